"""Classification's inference: class probabilities per text, in the shared batched loop."""

from __future__ import annotations


class Inference:
    """Classification's inference phase (mixed into the Task in __init__)."""

    # --- inference --------------------------------------------------------------
    def infer(self, model, tokenizer, features, examples, cfg):
        import numpy as np

        from ftpipe.inference import logits

        scores = logits(model, self.collator(tokenizer), features, cfg.batch_size, cfg.sort_by_length, cfg.batch_tokens)
        # One feature per example: in order when they are the same rows, else by id (a subset of them).
        if len(examples) == len(features):
            texts = examples["text"]
        else:
            by_id = dict(zip(examples["id"], examples["text"]))
            texts = [by_id[i] for i in features["id"]]
        names = self.cfg.labels
        out = []
        # The class from the logits themselves: a fresh head's are close enough that softmax in
        # float32 can tie them. Probabilities in float64, for the output only.
        shifted = np.exp(scores.astype(np.float64) - scores.max(axis=-1, keepdims=True))
        for example_id, text, row_scores, p in zip(features["id"], texts, scores, shifted / shifted.sum(axis=-1, keepdims=True)):
            best = int(row_scores.argmax())
            out.append({"id": example_id, "text": text, "prediction": names[best], "probability": float(p[best]),
                        "probabilities": {name: float(v) for name, v in zip(names, p)}})
        return out

    def predict(self, model, tokenizer, features, examples, cfg):
        rows = self.infer(model, tokenizer, features, examples, cfg)
        return [{"id": row["id"], "input": row["text"], "reference": self.cfg.labels[label], "prediction": row["prediction"],
                 "score": float(row["prediction"] == self.cfg.labels[label])} for row, label in zip(rows, features["labels"])]
