"""CoNLL-style column files: one `token ... label` per line, a blank line between sentences.

The token is the first column and the label the last (CoNLL-2003 carries POS and chunk tags
between them); `-DOCSTART-` lines are document breaks, not sentences. Records are numbered by
sentence, and each carries the line its first token is on, so errors can name the line too.
Columns are separated by tabs where a line has one (a token may then hold a space: `New York`),
else by ASCII spaces: a no-break space or another Unicode space is part of the token, never a cut.
Lines end at `\n`, `\r\n` or a lone `\r` (old Mac files).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from ftpipe.core.errors import DataError

BOM = "\ufeff"

SUFFIXES = (".conll", ".iob", ".txt")


def read_conll(path: Path, tokens_field: str, tags_field: str) -> Iterator[tuple[int, dict]]:
    """(sentence number, {tokens, tags, _line}), streamed: a GB file is never held whole."""
    number, tokens, tags, first = 0, [], [], 0
    for line_number, line in _lines(path):
        columns = _columns(line)
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


def _columns(line: str) -> list[str]:
    line = line.strip(" \t")
    if not line:
        return []
    return [c.strip(" ") for c in line.split("\t")] if "\t" in line else re.split(r" +", line)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines, decoded one at a time (a bad byte names its line), then one blank to end the last sentence."""
    number = 0
    with open(path, "rb") as fh:
        for chunk in fh:
            for raw in chunk.splitlines() or [b""]:  # bytes.splitlines: \n, \r\n and a lone \r, nothing else
                number += 1
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(path, f"line {number}: not valid UTF-8 (byte 0x{raw[err.start]:02x})") from None
                yield number, line.removeprefix(BOM) if number == 1 else line
    if number == 0:
        raise DataError(path, "file is empty")
    yield number + 1, ""
