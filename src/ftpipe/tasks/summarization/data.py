"""Summarization's records: a dialogue and one or more reference summaries per record, records to predict
on from plain lines."""

from __future__ import annotations

from ftpipe.core.errors import listed
from ftpipe.tasks.base import RecordError, record_id, visible


class Data:
    """Summarization's data phase (mixed into the Task in __init__)."""

    # --- preprocess -------------------------------------------------------------
    def clean(self, record, data_cfg):
        dialogue = record.get(self.cfg.dialogue_field)
        if not visible(dialogue):
            raise RecordError(self.cfg.dialogue_field, f"empty or missing dialogue (columns: {listed(record)}; map them with data.columns)")
        references = [record[f].strip() for f in self.cfg.summary_fields if visible(record.get(f))]
        if not references:
            raise RecordError(self.cfg.summary_fields[0], f"no summary in any of {', '.join(self.cfg.summary_fields)}")
        return {"id": record_id(record), "dialogue": dialogue.strip(), "references": references}

    @property
    def cli_field(self):
        return self.cfg.dialogue_field

    def line_record(self, line):
        return {self.cfg.dialogue_field: line.replace("\\n", "\n")}  # a dialogue on one line spells its turns' breaks \n

    def prediction_record(self, record):
        if any(isinstance(record.get(f), str) and record[f].strip() for f in self.cfg.summary_fields):
            return record
        return {**record, self.cfg.summary_fields[0]: "-"}  # no reference needed
