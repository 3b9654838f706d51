"""Tiny helpers to build self-contained HTML pages with embedded figures."""

from __future__ import annotations

import base64
import html
import io

import pandas as pd

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.45;padding:0 1em}
h1{border-bottom:2px solid #345;padding-bottom:.2em}h2{margin-top:1.8em;color:#234}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#eef2f6}
td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figcaption{font-size:.9em;color:#555}
.warn{background:#fff4e0;border-left:4px solid #e8a000;padding:.4em .8em}
.methods{background:#f6f8fa;padding:.8em 1em;border-radius:4px}
nav a{margin-right:1em}
.note{color:#555;font-style:italic}
.table-wrap{overflow-x:auto;max-width:100%}
.matrix td{min-width:4.5em}
"""


def esc(text) -> str:
    """HTML-escape any value."""
    return html.escape(str(text))


def figure_data_uri(fig, dpi: int = 90) -> str:
    """Render a matplotlib figure to a PNG data URI and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def figure(uri: str, caption: str, fig_id: str = "") -> str:
    """Build an embedded figure with a caption."""
    ident = f' id="{esc(fig_id)}"' if fig_id else ""
    return (f'<figure class="brainenc-figure"{ident}><img src="{uri}" alt="{esc(caption)}" '
            f'style="max-width:100%"><figcaption>{esc(caption)}</figcaption></figure>')


def table(frame: pd.DataFrame, float_format: str = "{:.3f}", table_id: str = "",
          css_class: str = "") -> str:
    """Render a DataFrame as an HTML table (floats formatted, missing values as 'n/a')."""
    def fmt(value):
        if value is None or (isinstance(value, float) and value != value):
            return "n/a"
        if isinstance(value, float):
            return float_format.format(value)
        return esc(value)

    attrs = (f' id="{esc(table_id)}"' if table_id else "") + (
        f' class="{esc(css_class)}"' if css_class else "")
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return (f"<div class='table-wrap'><table{attrs}><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def note(text: str) -> str:
    """Build a short explanatory paragraph (e.g. why a figure is absent)."""
    return f"<p class='note'>{esc(text)}</p>"


def nav(links: list[tuple[str, str]]) -> str:
    """Build a navigation bar of ``(anchor, label)`` links."""
    return "<nav>" + "".join(f"<a href='#{esc(a)}'>{esc(label)}</a>" for a, label in links) + \
        "</nav>"


def page(title: str, body: str) -> str:
    """Build a full HTML document."""
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
            f"<body><h1>{esc(title)}</h1>{body}</body></html>\n")


def matplotlib_agg():
    """Use the non-interactive backend and return pyplot."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt
