"""Summarization's report: ROUGE against the best of the references (rouge.py), per-example statistics for
the bootstrap, ROUGE-L and length plots for `dvc plots`, and the model card's example."""

from __future__ import annotations

from pathlib import Path

from ftpipe.tasks.base import Plot, load_metric


EXAMPLE = "#Person1#: Are you coming to the party tonight?\\n#Person2#: Yes, I will bring some cake."  # the card's


# `dvc plots` of this task type (dvc.yaml's `plot_specs` slots, filled from task.type by src/hydra_plugins).
PLOTS = [
    Plot("rougeL_per_example", "rouge.csv", "example", "rougeL", "scatter", "ROUGE-L (0-1) per example, base and tuned"),
    Plot("summary_length", "rouge.csv", "reference_words", "prediction_words", "scatter",
         "Summary length vs reference length (words), base and tuned"),
    Plot("rougeL_by_reference_length", "rouge.csv", "reference_words", "rougeL", "scatter",
         "ROUGE-L (0-1) vs reference length (words), base and tuned"),
]


class Report:
    """Summarization's report phase (mixed into the Task in __init__)."""

    def card_example(self, adapter):
        import json

        lines = [f'prompt = {json.dumps(self.cfg.prompt)}.replace("{{dialogue}}", "{EXAMPLE}")']
        if self.cfg.chat_template:
            lines += ['prompt = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)']
        return [], lines + [
            'inputs = tokenizer(prompt, return_tensors="pt")',
            "output = model.generate(**inputs, max_new_tokens=64, do_sample=False, pad_token_id=tokenizer.pad_token_id)",
            'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))']

    def example_stats(self, rows):
        import numpy as np

        # rougeL is the mean of the per-dialogue ROUGE-L each row carries as its score.
        return np.array([[r["score"]] for r in rows], dtype=np.float64), lambda sums, n: {"rougeL": sums[..., 0] / n}

    def metrics(self, rows):
        return load_metric(Path(__file__).with_name("rouge.py")).compute(predictions=[r["prediction"] for r in rows], references=[r["references"] for r in rows])

    def write_plots(self, rows, out_dir):
        import csv

        # Per-example ROUGE-L (0-1) and summary lengths: `dvc plots` shows their spread (PLOTS below).
        with open(out_dir / "rouge.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["example", "id", "rougeL", "prediction_words", "reference_words"])
            writer.writerows((i, r["id"], r["score"], len(r["prediction"].split()), len(r["reference"].split())) for i, r in enumerate(rows))
