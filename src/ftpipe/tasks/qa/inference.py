"""Question answering's inference: start and end logits over every window of a question, and the best
span among the n-best of all its windows (postprocess.py)."""

from __future__ import annotations

SNIPPET = 200  # characters of context shown next to the question in predictions and reports


def qa_logits(model, collator, features, batch_size: int, sort_by_length: bool, batch_tokens: int | None = None):
    """Start and end logits per feature (each trimmed to its own length), in input order."""
    from ftpipe.inference import batched, model_inputs

    def step(model, batch, rows):
        out = model(**batch)
        starts, ends = out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
        return [(s[:len(r["input_ids"])], e[:len(r["input_ids"])]) for s, e, r in zip(starts, ends, rows)]

    pairs = batched(model, model_inputs(features), collator, step, batch_size, sort_by_length, batch_tokens)
    return [s for s, _ in pairs], [e for _, e in pairs]


class Inference:
    """Question answering's inference phase (mixed into the Task in __init__)."""

    # --- evaluate ---------------------------------------------------------------
    def infer(self, model, tokenizer, features, examples, cfg):
        chosen, answers = self._best_spans(model, tokenizer, features, examples, cfg)
        return [{"id": row["id"], "question": row["question"], "prediction": answers[row["id"]]["text"],
                 "start": answers[row["id"]]["start"], "probability": answers[row["id"]]["probability"]} for row in chosen]

    def predict(self, model, tokenizer, features, examples, cfg):
        from ftpipe.tasks.qa.squad import question_scores

        chosen, answers = self._best_spans(model, tokenizer, features, examples, cfg)
        rows = []
        for row in chosen:
            answer = answers[row["id"]]
            em, f1 = question_scores(answer["text"], row["answer_text"])
            context = " ".join(row["context"].split())
            rows.append({
                "id": row["id"],
                "input": f"{row['question']} | {context[:SNIPPET]}{'...' if len(context) > SNIPPET else ''}",
                "reference": row["answer_text"][0] if row["answer_text"] else "",
                "answers": row["answer_text"],
                "prediction": answer["text"],
                "start": answer["start"],
                "probability": answer["probability"],
                "exact_match": em,
                "score": f1,  # per-question F1 in [0, 1]: what compare ranks fixed/broken by
            })
        return rows

    def _best_spans(self, model, tokenizer, features, examples, cfg):
        """The examples that have windows, and each one's best answer over all its windows."""
        from ftpipe.tasks.qa.postprocess import postprocess

        start_logits, end_logits = qa_logits(model, self.collator(tokenizer), features, cfg.batch_size, cfg.sort_by_length, cfg.batch_tokens)
        wanted = set(features["example_id"])
        chosen = examples.filter(lambda ids: [i in wanted for i in ids], input_columns="id", batched=True)
        answers = postprocess(
            chosen["id"], dict(zip(chosen["id"], chosen["context"])), features["example_id"], start_logits, end_logits,
            features["offset_mapping"], self.cfg.n_best, self.cfg.max_answer_length, self.cfg.version_2, self.cfg.null_threshold,
        )
        return chosen, answers
