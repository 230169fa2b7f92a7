"""Token classification's inference: tag logits per window, each word's tag from the window where it
has the most context, and the entities they make."""

from __future__ import annotations

from ftpipe.tasks.token_classification.features import sentence_text, word_spans
from ftpipe.tasks.token_classification.tags import describe, entity_spans


class Inference:
    """Token classification's inference phase (mixed into the Task in __init__)."""

    # --- inference --------------------------------------------------------------
    def infer(self, model, tokenizer, features, examples, cfg):
        return [self._entities(row, tags, scores) for row, tags, scores in self._word_tags(model, tokenizer, features, examples, cfg)]

    def predict(self, model, tokenizer, features, examples, cfg):
        from ftpipe.tasks.token_classification.entities import score

        rows = []
        for row, tags, scores in self._word_tags(model, tokenizer, features, examples, cfg):
            out = self._entities(row, tags, scores)
            reference = [self.tags[t] for t in row["tags"]]
            truth = entity_spans(reference, word_spans(row), sentence_text(row), strict=self.cfg.mode == "strict")
            both_empty = not truth and not out["entities"]
            rows.append({"id": row["id"], "input": out["text"], "reference": describe(truth), "prediction": out["prediction"],
                         "entities": out["entities"], "reference_tags": reference, "predicted_tags": tags,
                         "score": 1.0 if both_empty else score([tags], [reference], self.cfg.mode)["f1"]})
        return rows

    def _word_tags(self, model, tokenizer, features, examples, cfg):
        """(example row, a tag name per word, its probability) for each example that has windows."""
        import numpy as np

        from ftpipe.inference import batched, model_inputs

        def step(model, batch, chunk):
            logits = model(**batch).logits.float().cpu().numpy()
            return [row[:len(r["input_ids"])] for row, r in zip(logits, chunk)]

        logits = batched(model, model_inputs(features), self.collator(tokenizer), step, cfg.batch_size, cfg.sort_by_length, cfg.batch_tokens)
        best: dict[str, dict[int, tuple[int, int, float]]] = {}  # example -> word -> (context, tag id, probability)
        for example_id, word_ids, scores in zip(features["example_id"], features["word_ids"], logits):
            shifted = np.exp(scores.astype(np.float64) - scores.max(axis=-1, keepdims=True))
            probs = shifted / shifted.sum(axis=-1, keepdims=True)
            words_seen = best.setdefault(example_id, {})
            for pos, w in enumerate(word_ids):
                context = min(pos, len(word_ids) - 1 - pos)  # tokens on its shorter side, within this window
                if w >= 0 and (w not in words_seen or context > words_seen[w][0]):
                    tag = int(scores[pos].argmax())  # from the logits: a fresh head's softmax can tie in float32
                    words_seen[w] = (context, tag, float(probs[pos, tag]))
        for row in examples:
            if row["id"] in best:
                found = best[row["id"]]
                # A word no sub-token stands for (a character the tokenizer drops) is tagged O.
                picked = [found.get(w, (0, 0, 0.0)) for w in range(len(row["tokens"]))]
                yield row, [self.tags[tag] for _, tag, _ in picked], [p for _, _, p in picked]

    def _entities(self, row, tags, scores) -> dict:
        found = entity_spans(tags, word_spans(row), sentence_text(row), scores, strict=self.cfg.mode == "strict")
        return {"id": row["id"], "text": sentence_text(row), "prediction": describe(found), "entities": found}
