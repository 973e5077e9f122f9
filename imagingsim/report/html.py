"""The report as one self-contained HTML page: figures embedded as base64 PNG, no network.

A plain :class:`string.Template` (no template engine to install); every text is HTML-escaped,
so a scenario or agent name cannot inject markup. The page has no script: it opens from disk
in any browser, offline.
"""

from __future__ import annotations

import base64
import html
from string import Template

from imagingsim.report.build import Part, Report

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1200px; margin: 0 auto;
       padding: 1em 2em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
nav ol { columns: 2; font-size: 0.95em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
footer { margin-top: 3em; font-size: 0.8em; color: #777; }
</style>
</head>
<body>
<h1>$title</h1>
<p>$lead</p>
<nav><ol>
$toc
</ol></nav>
$body
<footer>$footer</footer>
</body>
</html>
""")


def _figure(fig) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    return (f'<figure id="fig-{html.escape(fig.name)}"><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(fig.caption)}"><figcaption>{html.escape(fig.caption)}</figcaption></figure>')


def _table(rows) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _part(part: Part) -> str:
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in part.paragraphs)
    figures = "".join(_figure(f) for f in part.figures)
    return (f'<section id="{html.escape(part.anchor)}"><h2>{html.escape(part.title)}</h2>'
            f"{paragraphs}{figures}{_table(part.table)}</section>")


def render_html(report: Report, footer: str) -> str:
    """The page of ``report`` (``footer``: plain text, e.g. the software version and the dataset)."""
    toc = "\n".join(f'<li><a href="#{html.escape(p.anchor)}">{html.escape(p.title)}</a></li>' for p in report.parts)
    return PAGE.substitute(title=html.escape(report.title), lead=html.escape(report.lead), toc=toc,
                           body="\n".join(_part(p) for p in report.parts), footer=html.escape(footer))


__all__ = ["PAGE", "render_html"]
