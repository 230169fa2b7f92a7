"""The extractive-QA arm: the BERT SQuAD tutorial's recipe against ftpipe's QA path, each in its own
process, on the same SQuAD questions (the first N of shared/data's train and dev files, read and
cleaned by ftpipe's QA plug-in), the same model and the same seeds.

recipe: the tutorial (shared/seeds/001_bert_squad_qa.txt) as written where it runs: one tokenizer call
        per question (question, context; padding="max_length", max_length=512, truncation=True: no
        windows, an answer cut off points at CLS), only input_ids and attention_mask go to the model,
        its hand-written loop (DataLoader shuffle=True, batch 8, torch AdamW lr 2e-5 with torch's
        defaults, no scheduler, no clipping, fp32, mean loss). Where it does not run, the least fix:
        it passes the answer's character offset as start_positions and no end_positions, so here
        both are the answer's token positions. It has no evaluation code: argmax start and argmax end
        of each padded feature (batch 8, fp32), an answer only when both are context tokens in order.
ftpipe: ftpipe's own package code (experiment=squad_bert): task.tokenize (384-token windows, stride
        128, no padding), task.collator, training_arguments (length-grouped, precision auto, linear
        decay, clipping 1.0) with the tutorial's lr, batch and epochs, task.predict (n-best span
        search over all windows) under precision.autocast(evaluate.precision).
Both score with ftpipe's SQuAD metric (exact match and F1, 0-100) and evaluate the base model (a fresh
QA head seeded the same way) and the tuned one; rates are computed from the same timer in both arms.
Tokenization is timed apart from training in both (the tutorial tokenizes in __getitem__, i.e. once
per epoch inside its loop: the same calls, moved out of train_s).
"""

from __future__ import annotations

import dataclasses
import math
from itertools import islice

import numpy as np

from benchmarks import bare
from benchmarks.arms import EVAL_SEED, TRAIN_SEED
from benchmarks.common import Spec, compose_params, ftpipe_fit, gpu_peak_mb, prepare_model, scratch_dir, task_examples, timer, validated
from benchmarks.utilization import eval_stats

# The QA workload as ftpipe runs it (model=minilm; tiny_bert for the smoke test).
QA_OVERRIDES = ["experiment=squad_bert", "data=squad_local"]
# The tutorial's settings (it trains 50 epochs; both arms train spec.qa_epochs).
TUTORIAL_QA_MAX_LENGTH = 512
TUTORIAL_QA_BATCH = 8
TUTORIAL_QA_LR = 2e-5


def qa_spec(spec: Spec) -> Spec:
    """`spec` with the QA workload's params and a model directory prepared from them (a no-op when
    it has them already: call it once in the parent, then hand the result to both arms)."""
    if spec.params.get("task", {}).get("type") == "qa" and spec.model_dir:
        return spec
    model = "tiny_bert" if spec.tiny else spec.model
    params = compose_params(QA_OVERRIDES + [f"model={'tiny_bert' if spec.tiny else 'minilm'}"])
    spec = dataclasses.replace(spec, params=params, model=model)
    return dataclasses.replace(spec, model_dir=prepare_model(spec, scratch_dir()))


def _scores(params: dict, predictions: list[str], examples, out: dict, which: str) -> None:
    from ftpipe.tasks import get_task

    task = get_task(validated(params, "task").task)
    scores = task.metrics([{"prediction": p, "answers": a} for p, a in zip(predictions, examples["answer_text"])])
    out[f"exact_match_{which}"], out[f"f1_{which}"] = round(scores["exact_match"], 2), round(scores["f1"], 2)
    out[f"empty_predictions_{which}"] = sum(not p for p in predictions)


def _rates(out: dict, phase: str, features: float, questions: float) -> None:
    """Features and questions per wall second and per CPU second of the timed phase."""
    unit = "samples" if phase == "train" else "features"
    out[f"{phase}_{unit}_per_s"] = round(features / out[f"{phase}_s"], 3)
    out[f"{phase}_{unit}_per_cpu_s"] = round(features / out[f"{phase}_cpu_s"], 3)
    out[f"{phase}_questions_per_s"] = round(questions / out[f"{phase}_s"], 3)
    out[f"{phase}_questions_per_cpu_s"] = round(questions / out[f"{phase}_cpu_s"], 3)


def _answer_tokens(sequence_ids, offsets, start_char: int, end_char: int) -> tuple[int, int]:
    """First and last token of the answer; (0, 0), CLS, when truncation cut it off."""
    context = [i for i, s in enumerate(sequence_ids) if s == 1]
    if not context or offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
        return 0, 0
    return (next(i for i in context if offsets[i][1] > start_char),
            next(i for i in reversed(context) if offsets[i][0] < end_char))


def recipe(spec: Spec) -> dict:
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, set_seed

    spec = qa_spec(spec)
    out: dict = {"arm": "recipe"}
    examples = {"train": task_examples(spec.params, "train", spec.qa_train_questions),
                "eval": task_examples(spec.params, "eval", spec.qa_eval_questions)}
    tokenizer = AutoTokenizer.from_pretrained(spec.model_dir)  # fast: offsets for the labels and the answers

    def encode(example):
        enc = tokenizer(example["question"], example["context"], padding="max_length",
                        max_length=TUTORIAL_QA_MAX_LENGTH, truncation=True, return_offsets_mapping=True)
        start = example["answer_start"][0]  # the tutorial trains on the first answer
        labels = _answer_tokens(enc.sequence_ids(), enc["offset_mapping"], start, start + len(example["answer_text"][0]))
        context_offsets = [o if s == 1 else None for o, s in zip(enc["offset_mapping"], enc.sequence_ids())]
        return enc["input_ids"], enc["attention_mask"], labels, context_offsets

    with timer(out, "tokenize_s"):
        train = [encode(e) for e in examples["train"]]
        evals = [encode(e) for e in examples["eval"]]

    def tensors(rows):
        return torch.tensor([r[0] for r in rows]), torch.tensor([r[1] for r in rows])

    def load():
        return AutoModelForQuestionAnswering.from_pretrained(spec.model_dir).to(spec.device)

    def evaluate(model, which):
        ids, mask = tensors(evals)
        starts, ends = [], []
        model.eval()
        with timer(out, f"eval_{which}_s", spec.device), torch.no_grad():
            for b in range(0, len(ids), TUTORIAL_QA_BATCH):
                logits = model(ids[b:b + TUTORIAL_QA_BATCH].to(spec.device), attention_mask=mask[b:b + TUTORIAL_QA_BATCH].to(spec.device))
                starts += logits.start_logits.argmax(-1).tolist()
                ends += logits.end_logits.argmax(-1).tolist()
            predictions = []
            for (_, _, _, offsets), s, e, context in zip(evals, starts, ends, examples["eval"]["context"]):
                ok = offsets[s] is not None and offsets[e] is not None and e >= s
                predictions.append(context[offsets[s][0]:offsets[e][1]] if ok else "")
        _rates(out, f"eval_{which}", len(evals), len(evals))
        _scores(spec.params, predictions, examples["eval"], out, which)

    set_seed(EVAL_SEED)
    evaluate(load(), "base")
    set_seed(TRAIN_SEED)
    model = load()
    ids, mask = tensors(train)
    positions = torch.tensor([r[2] for r in train])
    loader = DataLoader(TensorDataset(ids, mask, positions[:, 0], positions[:, 1]), batch_size=TUTORIAL_QA_BATCH, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=TUTORIAL_QA_LR)
    steps, losses = math.ceil(spec.qa_epochs * len(loader)), []
    with timer(out, "train_s", spec.device):
        model.train()
        while len(losses) < steps:
            for batch in islice(loader, steps - len(losses)):
                input_ids, attention_mask, start, end = (t.to(spec.device) for t in batch)
                optimizer.zero_grad()
                loss = model(input_ids, attention_mask=attention_mask, start_positions=start, end_positions=end).loss
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
    _rates(out, "train", len(train) * spec.qa_epochs, len(examples["train"]) * spec.qa_epochs)
    out["train_loss"] = round(float(np.mean(losses)), 4)
    evaluate(model, "tuned")
    real = [sum(r[1]) for r in train]  # every feature is padded to 512; its mask says what is real
    out.update(train_computed_tokens=int(len(train) * TUTORIAL_QA_MAX_LENGTH * spec.qa_epochs), train_real_tokens=int(sum(real) * spec.qa_epochs),
               train_squared_lengths=int(sum(n * n for n in real) * spec.qa_epochs))
    for which in ("base", "tuned"):
        out |= eval_stats(f"eval_{which}", [sum(r[1]) for r in evals], TUTORIAL_QA_BATCH, sort=False, padded_to=TUTORIAL_QA_MAX_LENGTH)
    out.update(train_questions=len(examples["train"]), eval_questions=len(examples["eval"]), train_features=len(train),
               eval_features=len(evals), tokens_per_train_feature=TUTORIAL_QA_MAX_LENGTH,
               train_answers_cut_off=sum(r[2] == (0, 0) for r in train), epochs=spec.qa_epochs, lr=TUTORIAL_QA_LR,
               batch_size=TUTORIAL_QA_BATCH, gpu_peak_mb=gpu_peak_mb(), torch_threads=torch.get_num_threads())
    return out


def ftpipe_arm(spec: Spec, train_overrides: dict | None = None, eval_overrides: dict | None = None) -> dict:
    import torch
    from transformers import set_seed

    from ftpipe.models.loading import load_for_task, load_tokenizer
    from ftpipe.precision import autocast, resolve
    from ftpipe.tasks import get_task

    spec = qa_spec(spec)
    p = validated(spec.params, "task", "model", "method", "tokenize", "train", "evaluate")
    # The tutorial's lr, batch and epochs; no validation split, so train time is training alone.
    train_cfg = dataclasses.replace(p.train, lr=TUTORIAL_QA_LR, batch_size=TUTORIAL_QA_BATCH, epochs=spec.qa_epochs,
                                    validation_fraction=0, **(train_overrides or {}))
    p = dataclasses.replace(p, evaluate=dataclasses.replace(p.evaluate, **(eval_overrides or {})))
    out: dict = {"arm": "ftpipe", "train_config": dataclasses.asdict(train_cfg), "evaluate_batch_size": p.evaluate.batch_size}
    task = get_task(p.task)
    tokenizer = load_tokenizer(spec.model_dir, task)
    examples = {"train": task_examples(spec.params, "train", spec.qa_train_questions),
                "eval": task_examples(spec.params, "eval", spec.qa_eval_questions)}
    with timer(out, "tokenize_s"):
        features = {split: task.tokenize(ds, tokenizer, split, p.tokenize.num_proc, p.tokenize.batch_size) for split, ds in examples.items()}

    def evaluate(model, which):
        log = bare.ForwardLog(model.to(spec.device), spec.device)
        with timer(out, f"eval_{which}_s", spec.device), autocast(p.evaluate.precision):
            rows = task.predict(model, tokenizer, features["eval"], examples["eval"], p.evaluate)
        _rates(out, f"eval_{which}", len(features["eval"]), len(rows))
        by_id = {row["id"]: row["prediction"] for row in rows}
        _scores(spec.params, [by_id[i] for i in examples["eval"]["id"]], examples["eval"], out, which)
        return model, log

    set_seed(EVAL_SEED)
    evaluate(load_for_task(task, spec.model_dir, tokenizer), "base")
    batches: list = []  # what ftpipe's collator produced: the bare loop's training batches
    model = ftpipe_fit(dataclasses.replace(p, train=train_cfg), task, tokenizer, features["train"], spec.model_dir, "ftpipe-qa",
                       spec.device, out, keep=batches).model
    _rates(out, "train", len(features["train"]) * spec.qa_epochs, len(examples["train"]) * spec.qa_epochs)
    bare.compare(out, *evaluate(model, "tuned"), batches, train_cfg, p.evaluate.precision, spec.device)
    for which in ("base", "tuned"):
        out |= eval_stats(f"eval_{which}", [len(ids) for ids in features["eval"]["input_ids"]], p.evaluate.batch_size, p.evaluate.sort_by_length,
                              batch_tokens=p.evaluate.batch_tokens)
    out.update(train_questions=len(examples["train"]), eval_questions=len(examples["eval"]),
               train_features=len(features["train"]), eval_features=len(features["eval"]),
               tokens_per_train_feature=round(float(np.mean([len(ids) for ids in features["train"]["input_ids"]])), 1),
               epochs=spec.qa_epochs, gpu_peak_mb=gpu_peak_mb(), torch_threads=torch.get_num_threads(),
               precision=resolve(train_cfg.precision), eval_precision=resolve(p.evaluate.precision))
    return out


if __name__ == "__main__":  # python -m benchmarks.qa --tiny: both arms alone, inline (the smoke test)
    import argparse
    import json

    from benchmarks.common import isolated

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny_bert, 16 train and 8 eval questions, inline")
    parser.add_argument("--train-questions", type=int)
    parser.add_argument("--eval-questions", type=int)
    parser.add_argument("--epochs", type=float)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    spec = Spec(threads=args.threads)
    if args.tiny:
        spec = dataclasses.replace(spec, tiny=True, qa_train_questions=16, qa_eval_questions=8, isolate=False)
    spec = dataclasses.replace(spec, qa_train_questions=args.train_questions or spec.qa_train_questions,
                               qa_eval_questions=args.eval_questions or spec.qa_eval_questions, qa_epochs=args.epochs or spec.qa_epochs)
    spec = qa_spec(spec)
    print(json.dumps({"recipe": isolated(recipe, spec), "ftpipe": isolated(ftpipe_arm, spec)}, indent=2))
