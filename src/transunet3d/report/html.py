"""Self-contained HTML: escaped text, tables, and images embedded as base64 data URIs (one file, no links)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.note { color: #666; font-size: 0.9em; }
"""


def text(value: object) -> str:
    return html.escape(str(value))


def number(value: object, digits: int = 4) -> str:
    """Numbers rounded for reading; NaN, and None (a summary's statistic of no value, JSON null), as an en dash;
    everything else as text."""
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return "&ndash;" if math.isnan(value) else f"{value:.{digits}f}"
    return text(value)


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], digits: int = 4) -> str:
    head = "".join(f"<th>{text(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{number(v, digits)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{text(alt)}" src="data:image/png;base64,{data}">'


def page(title: str, sections: Iterable[str]) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{text(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{text(title)}</h1>{''.join(sections)}</body></html>")
