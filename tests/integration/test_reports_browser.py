"""Reports render in headless Chromium: no console errors, every figure drawn.

Needs a Chromium binary (Debian package ``chromium``) and the ``playwright`` Python
package (only its driver is used; no browser is downloaded). Skipped when either
is missing.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.helpers.fake_reports import make_group_report, make_participant_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium binary found (install the Debian package 'chromium')")


@pytest.fixture(scope="module")
def page():
    executable = _browser()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable,
                                         args=["--no-sandbox", "--disable-gpu"])
        yield browser.new_page(viewport={"width": 1280, "height": 900})
        browser.close()


def render(page, report: Path) -> dict:
    """Load a report; return console errors, page errors, failed requests and figure states."""
    problems = {"console": [], "pageerror": [], "requestfailed": []}
    page.on("console", lambda m: problems["console"].append(m.text) if m.type == "error"
            else None)
    page.on("pageerror", lambda e: problems["pageerror"].append(str(e)))
    page.on("requestfailed", lambda r: problems["requestfailed"].append(r.url))
    page.goto(report.resolve().as_uri(), wait_until="load")
    figures = page.evaluate(
        "Array.from(document.querySelectorAll('figure.brainenc-figure')).map(f => ({"
        "id: f.id, complete: f.querySelector('img').complete,"
        "width: f.querySelector('img').naturalWidth,"
        "shown: f.getBoundingClientRect().height > 0}))")
    return {**problems, "figures": figures}


def _check(result: dict, html: str) -> None:
    assert result["console"] == [] and result["pageerror"] == []
    assert result["requestfailed"] == []
    expected = set(re.findall(r'<figure class="brainenc-figure" id="([^"]+)"', html))
    assert {f["id"] for f in result["figures"]} == expected
    for fig in result["figures"]:
        assert fig["complete"] and fig["width"] > 100 and fig["shown"], fig


def test_participant_report_in_browser(page, tmp_path):
    report = make_participant_report(tmp_path)
    result = render(page, report)
    _check(result, report.read_text())
    assert len(result["figures"]) >= 7
    shot = tmp_path / "participant.png"
    page.locator("figure.brainenc-figure").first.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5_000


def test_group_report_in_browser(page, tmp_path):
    report = make_group_report(tmp_path)
    result = render(page, report)
    _check(result, report.read_text())
    ids = {f["id"] for f in result["figures"]}
    assert {"fig-bars-brain", "fig-share", "fig-layers", "fig-cka"} <= ids
    shot = tmp_path / "group.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    table = page.locator("#table-variants tbody tr")
    assert table.count() == 3


@pytest.mark.slow
def test_demo_reports_in_browser(page, tmp_path):
    """The real demo pipeline's reports (participant and group) render cleanly."""
    from tests.helpers.demo import run_demo

    demo = run_demo(tmp_path)
    assert demo.participant_code == 0 and demo.group_code == 0
    for report in [demo.out / "sub-01.html", demo.out / "group" / "group.html"]:
        _check(render(page, report), report.read_text())
