"""Summarization's inference: greedy generation of each summary, batched and sorted by length."""

from __future__ import annotations

from ftpipe.tasks.summarization.features import PadCollator

from pathlib import Path

from ftpipe.tasks.base import load_metric


class Inference:
    """Summarization's inference phase (mixed into the Task in __init__)."""

    # --- inference --------------------------------------------------------------
    def infer(self, model, tokenizer, features, examples, cfg):
        from ftpipe.inference import batched

        generation = {"max_new_tokens": 64, "do_sample": False, **cfg.generation}

        def step(model, batch, _):
            generated = model.generate(**batch, pad_token_id=tokenizer.pad_token_id, **generation)
            return [text.strip() for text in tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)]

        prompts = [{"input_ids": ids} for ids in features["input_ids"]]
        # Left padding: generation appends on the right.
        outputs = batched(model, prompts, PadCollator(tokenizer.pad_token_id, "left"), step, cfg.batch_size, cfg.sort_by_length, cfg.batch_tokens)
        # One prompt per example, in order.
        return [{"id": example_id, "dialogue": dialogue, "prediction": prediction}
                for example_id, dialogue, prediction in zip(features["id"], examples["dialogue"], outputs)]

    def predict(self, model, tokenizer, features, examples, cfg):
        rouge = load_metric(Path(__file__).with_name("rouge.py"))
        rows = []
        for row, refs in zip(self.infer(model, tokenizer, features, examples, cfg), examples["references"]):
            score = rouge.compute(predictions=[row["prediction"]], references=[refs])["rougeL"]
            rows.append({"id": row["id"], "input": row["dialogue"], "reference": refs[0], "references": refs,
                         "prediction": row["prediction"], "score": score})
        return rows
