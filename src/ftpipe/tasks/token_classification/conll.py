"""CoNLL-style column files: one `token ... label` per line, a blank line between sentences.

The token is the first column and the label the last (CoNLL-2003 carries POS and chunk tags
between them); `-DOCSTART-` lines are document breaks, not sentences. Records are numbered by
sentence, and each carries the line its first token is on, so errors can name the line too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ftpipe.errors import DataError

BOM = "\ufeff"

SUFFIXES = (".conll", ".iob", ".txt")


def read_conll(path: Path, tokens_field: str, tags_field: str) -> Iterator[tuple[int, dict]]:
    """(sentence number, {tokens, tags, _line}), streamed: a GB file is never held whole."""
    number, tokens, tags, first = 0, [], [], 0
    for line_number, line in _lines(path):
        columns = line.split()
        if columns and columns[0] == "-DOCSTART-":
            columns = []
        if columns:
            if not tokens:
                first = line_number
            tokens.append(columns[0])
            tags.append(columns[-1] if len(columns) > 1 else None)  # no label column: clean names the token
        elif tokens:
            number += 1
            yield number, {tokens_field: tokens, tags_field: tags, "_line": first}
            tokens, tags = [], []


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines, decoded one at a time (a bad byte names its line), then one blank to end the last sentence."""
    number = 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(path, f"line {number}: not valid UTF-8 (byte 0x{raw[err.start]:02x})") from None
            yield number, line.removeprefix(BOM) if number == 1 else line
    if number == 0:
        raise DataError(path, "file is empty")
    yield number + 1, ""
