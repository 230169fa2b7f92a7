"""Text that goes into Markdown ftpipe writes (reports/compare.md, model cards): made inert, and numbers formatted."""

from __future__ import annotations

import html
import re

from ftpipe.core.errors import shown


def inert(text, limit: int = 300) -> str:
    """User text (ids, inputs, predictions, class names) as inert Markdown on one line.

    It comes from data files and models: without this a newline in an id starts a heading, a `|`
    splits a table cell, `<script>` or a backtick becomes HTML or code in the rendered report, and a
    terminal escape sequence recolours (or rewrites) the terminal that prints the file.
    """
    text = shown(" ".join(str(text).split()), limit=None)  # newlines and tabs become spaces; control characters escaped
    text = text if len(text) <= limit else text[:limit] + "..."  # cut before escaping: never inside an escape
    text = html.escape(text, quote=False)  # < > & shown as text, not parsed as HTML
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", text)  # Markdown's own markup, backslash-escaped


def interval(tested) -> str:
    """A delta's 95% interval and p-value (a core.results.Interval, or None) as the last two cells of a table row."""
    if tested is None:
        return "– | –"
    low, high = tested.ci95
    return f"[{low:+.4f}, {high:+.4f}] | {p_value(tested.p_value)}"


def p_value(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
