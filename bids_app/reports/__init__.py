"""Self-contained HTML reports (figures embedded as PNG data URIs)."""
