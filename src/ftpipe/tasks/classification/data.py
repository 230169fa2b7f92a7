"""Classification's records: a text and a label (a name, or an id from data.label_offset) per record, records
to predict on from plain lines."""

from __future__ import annotations

from ftpipe.core.errors import listed
from ftpipe.tasks.base import RecordError, record_id, visible


class Data:
    """Classification's data phase (mixed into the Task in __init__)."""

    # --- preprocess -------------------------------------------------------------
    def clean(self, record: dict, data_cfg) -> dict:
        text, label = self.cfg.text_field, self.cfg.label_field
        for key in (text, label):
            if key not in record:
                raise RecordError(key, f"missing (columns: {listed(record)}; map them with data.columns)")
        value = record[text]
        if not visible(value):
            raise RecordError(text, "empty or missing text")
        if self.cfg.unescape_newlines:
            value = value.replace("\\n", "\n").replace('\\"', '"')
        return {"id": record_id(record), "text": value.strip(), "label": self.label_id(record[label], data_cfg.label_offset)}

    def label_id(self, raw, offset: int) -> int:
        """Class id from a label name, an alias, or an integer (minus data.label_offset)."""
        if isinstance(raw, bool) or raw is None:
            raise RecordError(self.cfg.label_field, f"missing or invalid label {raw!r}")
        key = str(raw).strip()
        if key.lower() in self.names:
            return self.names[key.lower()]
        try:
            number = float(key)
        except ValueError:
            raise RecordError(self.cfg.label_field, f"unknown label {key!r} (known: {', '.join(self.cfg.labels)})") from None
        if not number.is_integer() or not 0 <= number - offset < len(self.cfg.labels):
            lo, hi = offset, offset + len(self.cfg.labels) - 1
            raise RecordError(self.cfg.label_field, f"label {key!r} out of range {lo}..{hi} (set data.label_offset if labels count from 1)")
        return int(number) - offset

    @property
    def cli_field(self):
        return self.cfg.text_field

    def prediction_record(self, record):
        if self.cfg.text_field in record:
            return {**record, self.cfg.label_field: 0}  # no label needed: any valid one, never used
        return record
