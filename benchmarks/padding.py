"""Padding waste at the sizes users train on, from each workload's real token lengths: no training.

The quick arms train 96 rows (QA 96 questions, summarization 16 dialogues), and transformers' length-grouped
sampler, ftpipe's default, shrinks its megabatches to keep four per epoch on so few rows
(`mega_batch_mult = min(rows // (4 * batch), 50)`), so their batches group little and pad much. From 200
batches' worth of rows on (1,600 at batch 8) it sorts megabatches of 50 batches. This section tokenizes each
workload's first `tokenize_rows` train examples with ftpipe's task plug-in and cuts them as training and
evaluation would at each size: row batches (length-grouped, the train batch size), token batches (the
section's budget) and evaluation's length-sorted batches. Sizes beyond the rows tokenized are drawn from
their lengths with replacement (seeded): on 10,138 SQuAD windows, drawing 100,000 from a random 475 of them
gave the same row-batch waste as the 10,138 did (0.018).
"""

from __future__ import annotations

import numpy as np

SIZES = (1_000, 10_000, 100_000, 500_000)


def row_batches(lengths: np.ndarray, batch_size: int, seed: int = 0) -> list[list[int]]:
    """One epoch's training batches from the Trainer's length-grouped sampler (ftpipe's default)."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    order = get_length_grouped_indices(lengths.tolist(), batch_size, generator=torch.Generator().manual_seed(seed))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def waste(batches: list[list[int]], lengths: np.ndarray) -> float:
    from ftpipe.trainer import stats

    return stats(batches, lengths)["padding_waste"]


def at_sizes(lengths: np.ndarray, arm_rows: int, batch_size: int, eval_batch_size: int | None, eval_sort: bool,
             batch_tokens: int) -> list[dict]:
    """Padding waste (computed positions / real tokens - 1) of each kind of batch on the arm's rows (the first
    `arm_rows`) and on SIZES rows drawn at random."""
    from ftpipe.inference import chunks, token_budget_batches

    rng = np.random.default_rng(0)
    points = []
    for n in (arm_rows, *SIZES):
        sample = lengths[:n] if n <= arm_rows else rng.choice(lengths, n, replace=n > len(lengths))
        points.append({"rows": n, "drawn": n > len(lengths), "row_batches": waste(row_batches(sample, batch_size), sample),
                       "token_batches": waste(token_budget_batches(sample, batch_tokens), sample),
                       "eval_sorted": waste(chunks(sample.tolist(), eval_batch_size, eval_sort, None), sample) if eval_batch_size else None})
    return points


def workload(params: dict, model_dir: str, examples, arm_examples: int, batch_tokens: int, max_rows: int,
             batch_size: int | None = None, evaluates_rows: bool = True) -> dict:
    """One workload's lengths (its first `max_rows` train examples through the task's tokenize: QA's become
    windows) and its waste at each size; the arm trains the rows of the first `arm_examples` examples.
    `evaluates_rows` False: evaluation batches other rows (summarization generates from prompts alone)."""
    from benchmarks.common import validated
    from ftpipe.inference import row_lengths
    from ftpipe.models.loading import load_tokenizer
    from ftpipe.tasks import get_task

    p = validated(params, "task", "tokenize", "train", "evaluate")
    task = get_task(p.task)
    tokenizer = load_tokenizer(model_dir, task)

    def lengths_of(rows) -> np.ndarray:
        return np.asarray(row_lengths(task.tokenize(rows, tokenizer, "train", p.tokenize.num_proc, p.tokenize.batch_size)), dtype=np.int64)

    lengths = lengths_of(examples.select(range(min(len(examples), max_rows))))
    arm_rows = len(lengths_of(examples.select(range(min(len(examples), arm_examples)))))
    batch_size = batch_size or p.train.batch_size
    return {"examples": min(len(examples), max_rows), "rows_tokenized": len(lengths), "mean_tokens": round(float(lengths.mean()), 1), "batch_size": batch_size,
            "eval_batch_size": p.evaluate.batch_size, "batch_tokens": batch_tokens,
            "points": at_sizes(lengths, arm_rows, batch_size, p.evaluate.batch_size if evaluates_rows else None,
                               p.evaluate.sort_by_length, batch_tokens)}


def section(spec, budgets: dict) -> dict:
    """Every workload of the suite's task sections: Yelp (arms), QA, tagging and summarization. `budgets`: each
    section's (train, eval) token budgets, as its token-batch arm runs them."""
    from benchmarks import qa, summarization, tagging
    from benchmarks.common import task_examples

    qa_run, tag_run = qa.qa_spec(spec), tagging.tagging_spec(spec)
    sum_params, sum_model_dir = summarization.workload(spec)
    rows = spec.tokenize_rows
    return {"workloads": {
        "arms": workload(spec.params, spec.model_dir, task_examples(spec.params, "train", rows), spec.train_rows, budgets["arms"][0], rows),
        "qa": workload(qa_run.params, qa_run.model_dir, task_examples(qa_run.params, "train", rows), spec.qa_train_questions,
                       budgets["qa"][0], rows, batch_size=qa.TUTORIAL_QA_BATCH),
        "tagging": workload(tag_run.params, tag_run.model_dir, tagging.sentences(tag_run.params, rows, 0), spec.tag_train_rows,
                            budgets["tagging"][0], rows),
        "summarization": workload(sum_params, sum_model_dir, task_examples(sum_params, "train", rows), spec.sum_train_dialogues,
                                  budgets["summarization"][0], rows, evaluates_rows=False)}}


def table(results: dict) -> list[str]:
    lines = ["", "| workload (batch) | rows | row batches (default) | token batches | evaluation, length-sorted |", "|---|---:|---:|---:|---:|"]
    for name, w in results["workloads"].items():
        for point in w["points"]:
            rows = f"{point['rows']:,}" + (" (drawn)" if point["drawn"] else "")
            lines.append(f"| {name} ({w['batch_size']} rows, {w['batch_tokens']} tokens, eval {w['eval_batch_size']}) | {rows} | "
                         f"{point['row_batches']} | {point['token_batches']} | {point['eval_sorted'] if point['eval_sorted'] is not None else '-'} |")
    return lines
