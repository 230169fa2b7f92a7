"""The dialogue-summarization arms: the QLoRA/DialogSum tutorial's recipe against ftpipe, each in its own process.

Workload: the DialogSum experiment's params (experiment=dialogsum_smollm2_lora): SmolLM2-135M-Instruct,
the packaged GGUF dequantized by ftpipe's download_model (the 2-layer tiny_llama for spec.tiny); the
first spec.sum_train_dialogues train dialogues and the first spec.sum_eval_dialogues dev dialogues
of shared/data/dialogsum, read and cleaned by ftpipe's summarization plug-in, the same rows in every
arm. Every arm trains one pass over them (as many optimizer steps as its batch makes), then generates greedily with ftpipe's
evaluate.generation.max_new_tokens for the tuned model only (no base evaluation: generation is the
slow part), scored with ftpipe's ROUGE.

recipe: the tutorial (shared/seeds/002_qlora_phi2_dialogsum.txt): its prompt ("Summarize the following
        conversation:\\n{dialogue}\\nSummary:") with the summary after it, `map(batched=True)` with no
        padding, DataCollatorForLanguageModeling (pads each batch; every token but padding is learned,
        the prompt too); LoRA r 32, alpha 32, dropout 0.05, bias none on q/k/v_proj and phi-2's
        attention output `dense`, which is llama's `o_proj`; lr 2e-4, batch 4 x 4 accumulation, the
        Trainer's default optimizer (AdamW) and linear schedule, fp32; then one generate() per dialogue.
        Not as written: its 100 warmup steps of 1000 become the fraction 0.1 (100 steps would outlast
        the run); the base loads in full precision, like ftpipe's lora (its 4-bit load is what
        ftpipe's qlora arm measures), so prepare_model_for_kbit_training, a 4-bit step, is left out;
        no evaluation or checkpoints during training; the tuned model is evaluated in memory, not
        saved and reloaded; rows are cut at task.max_length (512) tokens; pad token = eos if missing.
ftpipe: ftpipe's package code with its defaults, as arms.ftpipe_arm for Yelp: task.tokenize (its own
        prompt, only the summary + eos learned), method.build (the same LoRA r/alpha/dropout/targets:
        conf/method/lora.yaml, model.lora_target_modules), training_arguments (lr 3e-4, batch 4, no
        accumulation, warmup 0.1, length grouping, precision auto), task.collator, then task.predict
        (batched, left-padded, length-sorted generation, batch 16) inside precision.autocast.
        method="qlora": conf/method/qlora.yaml, the same on a 4-bit NF4 base (double quantization,
        fp32 compute and device_map cpu on a CPU), evaluated as trained, on the 4-bit base.
At batches of 16 and 4 the recipe takes a quarter of ftpipe's steps over the same dialogues: compare per dialogue.

packing_arm: train.packing (ftpipe.packing) against padded batches, training only: the ftpipe_lora arm's
        workload and one pass, the same batches of the same dialogues in both (same seed and sampler),
        with a collator that counts the tokens each batch computes (padding included) and the real ones.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from benchmarks import bare
from benchmarks.arms import TRAIN_SEED, timed_train
from benchmarks.common import Spec, compose_params, ftpipe_fit, gpu_peak_mb, scratch_dir, task_examples, timer, validated
from benchmarks.utilization import TokenCounter, WeightReads

EXPERIMENT = "experiment=dialogsum_smollm2_lora"
# The tutorial's settings; its target modules are phi-2's q/k/v_proj and `dense`, llama's o_proj.
TUTORIAL_PROMPT = "Summarize the following conversation:\n{dialogue}\nSummary:"
TUTORIAL_LORA = dict(r=32, lora_alpha=32, lora_dropout=0.05, bias="none", task_type="CAUSAL_LM",
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
TUTORIAL_LR, TUTORIAL_BATCH, TUTORIAL_ACCUM = 2e-4, 4, 4
TUTORIAL_WARMUP = 100 / 1000  # warmup_steps=100 of max_steps=1000, kept as a fraction of the steps


def workload(spec: Spec, method: str = "lora") -> tuple[dict, str]:
    """The arms' params and base model directory, built once under .scratch. Call it in the parent
    before the isolated arms, so dequantizing SmolLM2's GGUF stays out of their time and memory."""
    from ftpipe.models.sources import download_model

    params = compose_params([EXPERIMENT, f"method={method}"] + (["model=tiny_llama"] if spec.tiny else []))
    cfg = validated(params, "model").model
    model_dir = Path(".scratch") / f"summarization-{cfg.name}"
    if not model_dir.exists():
        download_model(cfg, model_dir)
    return params, str(model_dir)


def dialogues(spec: Spec, params: dict) -> dict:
    """The first train and eval dialogues, the same in every arm."""
    return {"train": task_examples(params, "train", spec.sum_train_dialogues),
            "eval": task_examples(params, "eval", spec.sum_eval_dialogues)}


def steps(dialogues: int, per_step: int) -> int:
    """Optimizer steps for one pass over the dialogues (the Trainer's max_steps)."""
    return max(1, dialogues // per_step)


def eos_ids(model, tokenizer) -> list[int]:
    eos = model.generation_config.eos_token_id
    return [i for i in (eos if isinstance(eos, list) else [eos]) if i is not None] or [tokenizer.eos_token_id]


def generated_tokens(new_ids, eos: list[int]) -> int:
    """New tokens of each row up to and including its first EOS (what follows is padding)."""
    import torch

    done = torch.isin(new_ids, torch.tensor(eos, device=new_ids.device))
    lengths = torch.where(done.any(dim=1), done.int().argmax(dim=1) + 1, new_ids.shape[1])
    return int(lengths.sum())


def counting_generate(model, eos: list[int]) -> list[int]:
    """Wrap model.generate to count what each call generated (task.predict hands back texts only)."""
    counts, generate = [], model.generate

    def wrapped(*args, **kwargs):
        ids = generate(*args, **kwargs)
        counts.append(generated_tokens(ids[:, kwargs["input_ids"].shape[1]:], eos))
        return ids

    model.generate = wrapped
    return counts


def recipe_train(trainer, out: dict, device: str) -> None:
    """The recipe's Trainer: arms.timed_train, the tokens its batches computed, and step_figures."""
    trainer.data_collator = counter = TokenCounter(trainer.data_collator)
    timed_train(trainer, out, device)
    out |= counter.stats("train")
    step_figures(out, trainer)


def step_figures(out: dict, trainer) -> None:
    """Optimizer steps (and per second) and the training rows' mean length, of a trained Trainer."""
    args = trainer.args
    out["effective_batch"] = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    out["train_steps"] = trainer.state.global_step
    out["train_steps_per_s"] = round(out["train_samples_per_s"] / out["effective_batch"], 4)
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    out.update(train_dialogues=len(lengths), tokens_per_train_row=round(float(np.mean(lengths)), 1))


def evaluated(out: dict, rouge: dict, dialogues: int, tokens: int) -> None:
    out.update(eval_dialogues=dialogues, eval_dialogues_per_s=round(dialogues / out["eval_s"], 3),
               eval_dialogues_per_cpu_s=round(dialogues / out["eval_cpu_s"], 3), generated_tokens=tokens,
               generated_tokens_per_s=round(tokens / out["eval_s"], 2), **{k: round(rouge[k], 4) for k in ("rouge1", "rouge2", "rougeL")})


def recipe(spec: Spec) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling, Trainer, TrainingArguments, set_seed

    from ftpipe.methods.base import count_trainable
    from ftpipe.tasks import get_task

    params, model_dir = workload(spec)
    p = validated(params, "task", "evaluate")
    examples = dialogues(spec, params)
    out: dict = {"arm": "recipe", "method": "lora"}
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    def encode(batch):
        texts = [TUTORIAL_PROMPT.format(dialogue=d) + " " + refs[0] for d, refs in zip(batch["dialogue"], batch["references"])]
        return tokenizer(texts, truncation=True, max_length=p.task.max_length)

    with timer(out, "tokenize_s"):
        train_tok = examples["train"].map(encode, batched=True, remove_columns=examples["train"].column_names)

    set_seed(TRAIN_SEED)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True), LoraConfig(**TUTORIAL_LORA))
    out["trainable_params"] = count_trainable(model)["trainable_params"]
    args = TrainingArguments(
        output_dir=str(scratch_dir() / "recipe"), learning_rate=TUTORIAL_LR, per_device_train_batch_size=TUTORIAL_BATCH,
        gradient_accumulation_steps=TUTORIAL_ACCUM, max_steps=steps(spec.sum_train_dialogues, TUTORIAL_BATCH * TUTORIAL_ACCUM), warmup_steps=TUTORIAL_WARMUP,
        logging_steps=10, seed=TRAIN_SEED, save_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=spec.device == "cpu",
    )
    recipe_train(Trainer(model=model, args=args, train_dataset=train_tok, data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False)),
          out, spec.device)

    # The tutorial's loop, one dialogue at a time; greedy, with ftpipe's max_new_tokens, so outputs compare.
    generation = {"max_new_tokens": p.evaluate.generation.get("max_new_tokens", 64), "do_sample": False}
    eos, predictions, tokens = eos_ids(model, tokenizer), [], 0
    model.eval()
    reads = WeightReads(model, "fp32")
    with timer(out, "eval_s", spec.device):
        for dialogue in examples["eval"]["dialogue"]:
            inputs = tokenizer(TUTORIAL_PROMPT.format(dialogue=dialogue), return_tensors="pt").to(model.device)
            new = model.generate(**inputs, **generation, pad_token_id=tokenizer.pad_token_id)[:, inputs["input_ids"].shape[1]:]
            tokens += generated_tokens(new, eos)
            predictions.append(tokenizer.decode(new[0], skip_special_tokens=True).strip())
    rows = [{"prediction": pred, "references": refs} for pred, refs in zip(predictions, examples["eval"]["references"])]
    evaluated(out, get_task(p.task).metrics(rows), len(rows), tokens)
    out |= reads.stats()
    out.update(max_new_tokens=generation["max_new_tokens"], precision="fp32", eval_precision="fp32",
               gpu_peak_mb=gpu_peak_mb(), torch_threads=torch.get_num_threads())
    return out


def ftpipe_arm(spec: Spec, method: str = "lora", frozen_base: str | None = None, batch_tokens: tuple | None = None) -> dict:
    """`frozen_base`: method.frozen_base for this arm (fp32: the ablation of a base stored in bf16).
    `batch_tokens`: (train, evaluate) token budgets; training is then one pass (epochs 1), not a step count."""
    import copy

    import torch
    from accelerate.utils import extract_model_from_parallel

    from ftpipe.models.loading import load_tokenizer
    from ftpipe.precision import autocast, for_inference, quantized, resolve
    from ftpipe.tasks import get_task

    params, model_dir = workload(spec, method)
    if frozen_base:
        params = {**params, "method": {**params["method"], "frozen_base": frozen_base}}
    p = validated(params, "task", "model", "method", "tokenize", "train", "evaluate")
    # No validation split: every arm is timed on training alone.
    train_cfg = dataclasses.replace(p.train, max_steps=steps(spec.sum_train_dialogues, p.train.batch_size * p.train.grad_accum),
                                    validation_fraction=0)
    if batch_tokens:
        train_cfg = dataclasses.replace(train_cfg, max_steps=-1, epochs=1.0, batch_tokens=batch_tokens[0])
        p = dataclasses.replace(p, evaluate=dataclasses.replace(p.evaluate, batch_tokens=batch_tokens[1]))
    out: dict = {"arm": f"ftpipe_{method}", "method": method, "train_config": dataclasses.asdict(train_cfg),
                 "frozen_base": getattr(p.method, "frozen_base", None)}
    task = get_task(p.task)
    tokenizer = load_tokenizer(model_dir, task)
    examples = dialogues(spec, params)
    with timer(out, "tokenize_s"):
        features = {split: task.tokenize(ds, tokenizer, split, p.tokenize.num_proc, p.tokenize.batch_size) for split, ds in examples.items()}

    batches: list = []  # what ftpipe's collator produced: the bare loop's training batches
    fitted = ftpipe_fit(dataclasses.replace(p, train=train_cfg), task, tokenizer, features["train"], model_dir, "ftpipe", spec.device, out,
                        keep=batches)
    step_figures(out, fitted.run.trainer)
    model, out["trainable_params"] = fitted.model, fitted.trainable["trainable_params"]

    # Generates as the evaluate stage does (for_inference: weights in the compute dtype), from a copy where that
    # casts them, since the bare loop trains the model itself afterwards.
    decoder = extract_model_from_parallel(model, keep_fp32_wrapper=False)
    if not quantized(decoder):
        decoder = for_inference(copy.deepcopy(decoder), p.evaluate.precision, decodes=task.decodes)
    counts = counting_generate(decoder, eos_ids(decoder, tokenizer))
    reads = WeightReads(decoder, resolve(p.evaluate.precision))
    with timer(out, "eval_s", spec.device), autocast(p.evaluate.precision):
        rows = task.predict(decoder, tokenizer, features["eval"], examples["eval"], p.evaluate)
    del decoder
    evaluated(out, task.metrics(rows), len(rows), sum(counts))
    out |= reads.stats()
    bare.compare(out, model, None, batches, train_cfg, p.evaluate.precision, spec.device)  # generation has no bare forward here
    out.update(max_new_tokens=p.evaluate.generation.get("max_new_tokens", 64), precision=resolve(train_cfg.precision),
               eval_precision=resolve(p.evaluate.precision), gpu_peak_mb=gpu_peak_mb(), torch_threads=torch.get_num_threads())
    return out


def packing_arm(spec: Spec, packing: bool, group_by_length: bool = True) -> dict:

    from ftpipe.models.loading import load_tokenizer
    from ftpipe.precision import resolve
    from ftpipe.tasks import get_task

    params, model_dir = workload(spec)
    p = validated(params, "task", "model", "method", "tokenize", "train")
    train_cfg = dataclasses.replace(p.train, max_steps=steps(spec.sum_train_dialogues, p.train.batch_size * p.train.grad_accum),
                                    validation_fraction=0, packing=packing, group_by_length=group_by_length)
    out: dict = {"arm": "packed" if packing else "padded", "packing": packing, "group_by_length": group_by_length,
                 "batch_size": train_cfg.batch_size, "max_length": p.task.max_length}
    task = get_task(p.task)
    tokenizer = load_tokenizer(model_dir, task)
    features = task.tokenize(dialogues(spec, params)["train"], tokenizer, "train", p.tokenize.num_proc, p.tokenize.batch_size)
    # fit checks a packed model's attention before training, as the train stage does; the timing starts after
    step_figures(out, ftpipe_fit(dataclasses.replace(p, train=train_cfg), task, tokenizer, features, model_dir, out["arm"],
                                 spec.device, out).run.trainer)
    real, computed = out["train_real_tokens"], out["train_computed_tokens"]
    out.update(real_tokens=real, computed_tokens=computed, padding_waste=round(computed / real - 1, 4),
               real_tokens_per_s=round(real / out["train_s"], 1), real_tokens_per_cpu_s=round(real / out["train_cpu_s"], 1),
               precision=resolve(train_cfg.precision))
    return out
