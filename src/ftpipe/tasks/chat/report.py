"""Chat's report: token F1, ROUGE-L and exact match of the generated turn, and the perplexity of the reference
turn, each rebuilt from per-example sums for the bootstrap; plots by reference length and by number of turns;
the model card's example (apply_chat_template, and the template itself)."""

from __future__ import annotations

import csv
import math

from ftpipe.tasks.base import Plot

EXAMPLE = [{"role": "user", "content": "What is the capital of France?"}]  # the card's conversation

# `dvc plots` of this task type (dvc.yaml's `plot_specs` slots, filled from task.type by src/hydra_plugins).
PLOTS = [
    Plot("token_f1_by_reference_length", "scores.csv", "reference_words", "token_f1", "scatter",
         "Token F1 (0-1) vs reference length (words), base and tuned"),
    Plot("token_f1_by_turns", "by_turns.csv", "token_f1", "turns", "bar_horizontal",
         "Mean token F1 (0-1) by number of turns in the conversation, base and tuned"),
]
STATS = ("token_f1", "rougeL", "exact_match", "nll", "reference_tokens")


class Report:
    """Chat's report phase (mixed into the Task in __init__)."""

    def card_example(self, adapter):
        import json

        template = ["# The chat template this model formats conversations with (tokenizer.chat_template, saved in "
                    "chat_template.jinja beside the weights):", *[f"#   {line}" for line in self.template_shown().splitlines()]]
        return [], [*template, f"messages = {json.dumps(EXAMPLE)}",
                    'inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)',
                    "output = model.generate(**inputs, max_new_tokens=64, do_sample=False, pad_token_id=tokenizer.pad_token_id)",
                    'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))']

    def template_shown(self) -> str:
        from ftpipe.tasks.chat.templates import NAMED

        if not self.cfg.chat_template:
            return "the base model's own, unchanged (task.chat_template: null): print(tokenizer.chat_template) shows it"
        return NAMED.get(self.cfg.chat_template, self.cfg.chat_template).replace("{%", "\n{%").strip()

    def example_stats(self, rows):
        import numpy as np

        def to_metrics(sums, n):
            return {"token_f1": sums[..., 0] / n, "rougeL": sums[..., 1] / n, "exact_match": sums[..., 2] / n,
                    "perplexity": np.exp(sums[..., 3] / np.maximum(sums[..., 4], 1))}

        return np.array([[r[k] for k in STATS] for r in rows], dtype=np.float64).reshape(len(rows), len(STATS)), to_metrics

    def metrics(self, rows):
        n = max(len(rows), 1)
        tokens = sum(r["reference_tokens"] for r in rows)
        return {"token_f1": sum(r["token_f1"] for r in rows) / n, "rougeL": sum(r["rougeL"] for r in rows) / n,
                "exact_match": sum(r["exact_match"] for r in rows) / n,
                "perplexity": math.exp(sum(r["nll"] for r in rows) / max(tokens, 1)), "reference_tokens_total": tokens}

    def write_plots(self, rows, out_dir):
        with open(out_dir / "scores.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["example", "id", "token_f1", "rougeL", "reference_words", "prediction_words", "turns"])
            writer.writerows((i, r["id"], r["token_f1"], r["rougeL"], len(r["reference"].split()), len(r["prediction"].split()), r["turns"])
                             for i, r in enumerate(rows))
        by_turns: dict[int, list[float]] = {}
        for r in rows:
            by_turns.setdefault(r["turns"], []).append(r["token_f1"])
        with open(out_dir / "by_turns.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["turns", "token_f1", "examples"])
            writer.writerows((turns, round(sum(v) / len(v), 6), len(v)) for turns, v in sorted(by_turns.items()))
