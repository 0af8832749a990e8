"""One self-contained HTML page: sections of text, tables and PNG plots (embedded as base64)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Section:
    title: str
    """Heading of the section."""
    text: str = ""
    """Paragraph(s) of plain text (escaped)."""
    table: dict[str, object] = field(default_factory=dict)
    """Key/value rows shown as a two-column table."""
    images: list[str] = field(default_factory=list)
    """PNG paths, embedded inline so the page is one file."""
    pre: str = ""
    """Preformatted text (e.g. a model sample)."""


_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse}td{border:1px solid #ddd;padding:.2rem .6rem;font-size:.9rem}
td:first-child{color:#555}pre{background:#f6f6f6;padding:.6rem;white-space:pre-wrap}img{max-width:100%}"""


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render(title: str, sections: list[Section]) -> str:
    parts = [f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title><style>{_CSS}</style>",
             f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            parts += [f"<p>{html.escape(p)}</p>" for p in s.text.split("\n\n")]
        if s.table:
            rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>"
                           for k, v in s.table.items())
            parts.append(f"<table>{rows}</table>")
        if s.pre:
            parts.append(f"<pre>{html.escape(s.pre)}</pre>")
        for img in s.images:
            b64 = base64.b64encode(Path(img).read_bytes()).decode()
            parts.append(f'<p><img alt="{html.escape(Path(img).name)}" src="data:image/png;base64,{b64}"></p>')
    return "\n".join(parts) + "\n"


def write_report(path: str | Path, title: str, sections: list[Section]) -> Path:
    from lmlab.io import write_text

    write_text(path, render(title, sections))
    return Path(path)
