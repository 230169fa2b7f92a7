"""Chat's inference: the last assistant turn generated from the conversation before it (batched, left-padded),
cut at the template's end-of-turn marker; and the log-likelihood of the reference turn, for perplexity."""

from __future__ import annotations

from ftpipe.tasks.chat.features import IGNORE, PadCollator
from ftpipe.tasks.chat.templates import end_of_turn


def _generate(model, tokenizer, features, cfg) -> list[str]:
    from ftpipe.inference import batched

    generation = {"max_new_tokens": 64, "do_sample": False, **cfg.generation}
    marker = end_of_turn(tokenizer)
    stops = [tokenizer.eos_token_id, *([tokenizer.convert_tokens_to_ids(marker)] if marker in tokenizer.get_vocab() else [])]

    def step(model, batch, _):
        generated = model.generate(**batch, pad_token_id=tokenizer.pad_token_id, eos_token_id=sorted(set(stops)), **generation)
        texts = tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        # A marker the tokenizer spells in pieces (a named template on a base without its tokens) ends the turn too.
        return [(text.split(marker)[0] if marker else text).strip() for text in texts]

    prompts = [{"input_ids": ids} for ids in features["input_ids"]]
    return batched(model, prompts, PadCollator(tokenizer.pad_token_id, "left"), step, cfg.batch_size, cfg.sort_by_length, cfg.batch_tokens)


def _log_likelihoods(model, tokenizer, features, cfg) -> list[tuple[float, int]]:
    """(summed negative log-likelihood, tokens) of each reference turn, given the conversation before it."""
    import torch

    from ftpipe.inference import batched

    def step(model, batch, _):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
        labels = batch["labels"][:, 1:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none")
        mask = labels != IGNORE
        return [(float((n * m).sum()), int(m.sum())) for n, m in zip(nll, mask)]

    rows = [{"input_ids": ids or [tokenizer.pad_token_id], "labels": labels or [IGNORE]}
            for ids, labels in zip(features["full_ids"], features["full_labels"])]
    return batched(model, rows, PadCollator(tokenizer.pad_token_id, "right"), step, cfg.batch_size, cfg.sort_by_length, cfg.batch_tokens)


class Inference:
    """Chat's inference phase (mixed into the Task in __init__)."""

    def infer(self, model, tokenizer, features, examples, cfg):
        by_id = {row["id"]: row for row in examples}
        return [{"id": example_id, "conversation": by_id[example_id]["messages"][:-1], "prediction": prediction}
                for example_id, prediction in zip(features["id"], _generate(model, tokenizer, features, cfg))]

    def predict(self, model, tokenizer, features, examples, cfg):
        from ftpipe.tasks.chat.scores import example_scores

        by_id = {row["id"]: row for row in examples}
        rows = []
        likelihoods = _log_likelihoods(model, tokenizer, features, cfg)
        for row, (nll, tokens) in zip(self.infer(model, tokenizer, features, examples, cfg), likelihoods):
            refs = by_id[row["id"]]["references"]
            scores = example_scores(row["prediction"], refs)
            rows.append({"id": row["id"], "input": row["conversation"][-1]["content"], "reference": refs[0], "references": refs,
                         "prediction": row["prediction"], "score": scores["token_f1"], **scores,
                         "turns": sum(m["role"] != "system" for m in row["conversation"]) + 1, "nll": nll, "reference_tokens": tokens})
        return rows
