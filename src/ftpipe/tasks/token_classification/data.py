"""Token classification's records: CoNLL files or token and tag records read, tags checked and stored
as IOB2 ids, records to predict on from plain text."""

from __future__ import annotations

import json
from pathlib import Path

from ftpipe.core.errors import listed
from ftpipe.core.io import read_records
from ftpipe.tasks.base import RecordError, record_id, visible
from ftpipe.tasks.token_classification.conll import SUFFIXES, read_conll
from ftpipe.tasks.token_classification.tags import to_iob2, words


def _as_list(value, field: str) -> list:
    """A list as records carry it: a list, a JSON list (a CSV cell), or space-separated names."""
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise RecordError(field, "is not a JSON list") from None
        else:
            value = value.split()
    if hasattr(value, "tolist"):  # Parquet lists arrive as numpy arrays
        value = value.tolist()
    if not isinstance(value, list):
        raise RecordError(field, f"expected a list, got {type(value).__name__}")
    return value


class Data:
    """Token classification's data phase (mixed into the Task in __init__)."""

    # --- preprocess -------------------------------------------------------------
    def read(self, path, columns):
        if Path(path).suffix.lower() in SUFFIXES:
            return read_conll(Path(path), self.cfg.tokens_field, self.cfg.tags_field)
        return read_records(path, columns)

    def clean(self, record, data_cfg):
        cfg = self.cfg
        for key in (cfg.tokens_field, cfg.tags_field):
            if key not in record:
                raise RecordError(key, f"missing (columns: {listed(record)}; map them with data.columns)")
        tokens, tags = _as_list(record[cfg.tokens_field], cfg.tokens_field), _as_list(record[cfg.tags_field], cfg.tags_field)
        if not tokens:
            raise RecordError(cfg.tokens_field, "empty sentence (no tokens)")
        line = record.get("_line")  # CoNLL: the line of the first token
        where = lambda i: f"token {i + 1} ({tokens[i]!r}{f', line {line + i}' if line else ''})"  # noqa: E731
        for i, token in enumerate(tokens):
            # A token of only spaces or invisible characters (a zero-width space) gets no sub-token from the
            # tokenizer: its tag would never be trained or scored.
            if not visible(token):
                raise RecordError(cfg.tokens_field, f"token {i + 1} is empty, invisible or not a string ({token!r})")
        if len(tags) != len(tokens):
            raise RecordError(cfg.tags_field, f"{len(tokens)} tokens but {len(tags)} tags")
        self.stats["tags_repaired"] += 0  # the key shows in the metrics even when nothing was repaired
        row = {"id": record_id(record), "tokens": [t.strip() for t in tokens],
               "tags": to_iob2(tags, self.ids, cfg.scheme, cfg.repair_tags, self.stats, where, cfg.tags_field)}
        if "_starts" in record:  # raw text to predict on: entities are given in its own offsets
            row.update(text=record[cfg.text_field], starts=record["_starts"])
        return row

    # --- ftpipe-predict on new records -------------------------------------------
    @property
    def cli_field(self):
        return self.cfg.text_field

    def prediction_record(self, record):
        cfg = self.cfg
        if cfg.tokens_field not in record and isinstance(record.get(cfg.text_field), str):
            tokens, starts = words(record[cfg.text_field])
            record = {**record, cfg.tokens_field: tokens, "_starts": starts}
        if cfg.tokens_field in record and cfg.tags_field not in record:  # no tags needed: O, never read
            tokens = record[cfg.tokens_field]
            record = {**record, cfg.tags_field: ["O"] * (len(tokens) if isinstance(tokens, list) else len(str(tokens).split()))}
        return record
