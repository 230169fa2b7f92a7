"""Data at scale: the pipeline's data stages on a Yelp-size CSV, against the old code and against
the Hugging Face way of doing the same work, in one run.

    python -m benchmarks.run --suite data                   # 6.5k, 100k and 650k rows, every arm (run it on an idle machine)
    python -m benchmarks.run --suite data --quick           # 2,000 and 20,000 rows
    python -m benchmarks.run --suite data --rows 300 --arms ftpipe,hf --out /tmp/d.json   # the smoke test

Input: the 1,000 shared Yelp reviews grown to N train rows and N/13 eval rows (650k / 50k is Yelp
Review Full's size), each row a small seeded edit of one (adjacent words swapped, a word dropped) so
no text repeats and nothing is deduplicated or cached by content. Generated once per N under
.scratch/data-scale/inputs/ (git-ignored: third-party text is never committed).

Arms:
- ftpipe: this working tree in a throwaway git + DVC repository; `dvc repro subset` runs
  data_file, download_data, download_model, preprocess, tokenize and subset.
- before: the same from commit 2da293e (`git archive`), the code before the data-path work.
- hf: `load_dataset("csv")` + a batched `map` doing preprocess's cleaning (strip, unescape, int
  label), then in a fresh process a batched `map` with the same tokenizer (truncation at the task's
  max_length, batch 1000, keeping input_ids and labels): what one writes without a pipeline.

How a stage is measured, the same for every arm: in the throwaway repositories each `python
stages/...` cmd of dvc.yaml runs under this file's `--meter`, which starts the stage and reaps it
with os.wait4: wall seconds, CPU seconds (user + system, its reaped children included) and ru_maxrss,
the largest resident set of the stage or any child it waited for (with tokenize.num_proc null a
stage is one process). So the figures come from inside the real `dvc repro`, no stage runs twice,
and the old code, which logs no figures of its own, is measured exactly as the new. The new code's
own "done in ..." lines are kept beside them (`logged`) as a cross-check (they time main() only,
not the interpreter's start and the imports, a second or so per stage). The HF phases are each
their own process, reaped the same way. `repro` is the whole `dvc repro subset` (DVC's hashing and
bookkeeping included). Bytes are `du -sb` after the repro; `workspace_and_cache` and `unique` are
one `du` call each, which counts a hard-linked inode once.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "yelp_review_full" / "full_dataset.csv"
SCRATCH = REPO / ".scratch" / "data-scale"
RESULTS = REPO / "benchmarks" / "results" / "data-scale.json"
BEFORE = "2da293e"  # the old code: HEAD before the data-path work
ARMS = ("ftpipe", "before", "hf")  # in this order: hf loads the tokenizer ftpipe's download_model wrote
ROWS, QUICK_ROWS = [6_500, 100_000, 650_000], [2_000, 20_000]  # 100x apart: a "flat in rows" claim needs it
EVAL_FRACTION = 13  # Yelp Review Full: 650k train, 50k test
PROJECT_FILES = ["conf", "stages", "src", "data/inputs", "dvc.yaml", ".dvcignore", ".gitignore", "pyproject.toml"]
OVERRIDES = ["experiment=yelp_bert", "model=minilm", "data=yelp_local", "subset.train_size=1000", "subset.eval_size=500"]
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
METER_LOG = "DATA_SCALE_METER_LOG"
DATA_STAGES = ("download_data", "preprocess", "tokenize", "subset")
STAGE_NAMES = {"tokenize_text": "tokenize"}  # script stem -> dvc stage, where they differ
DONE = re.compile(r"ftpipe\.stage: (\w+): done in ([\d.]+) s \(CPU ([\d.]+) s\), peak memory ([\d.]+) MB")
# What the targets compare, and their limits (issue: "data at scale")
TARGETS = {"preprocess_peak_vs_hf_load_clean": 1.0, "preprocess_peak_growth": 1.2, "tokenize_peak_vs_hf": 1.0,
           "tokenize_wall_vs_hf": 1.1, "workspace_and_cache_vs_before": 0.6}


# -- input -------------------------------------------------------------------------------------

def variant(text: str, i: int, seen: set) -> str:
    """Row i's text: the original for the first pass over the source, then seeded edits, more of them
    until the text is new (compared stripped, as preprocess keeps it). A text too short to vary
    (one word) gets its row number."""
    words = text.split(" ")
    rng = random.Random(f"data-scale-{i}")
    for attempt in range(12):
        edited = list(words)
        for _ in range(attempt + (i >= 1000)):  # the first 1,000 rows: the originals, unedited
            if len(edited) > 2 and rng.random() < 0.5:
                del edited[rng.randrange(len(edited))]
            elif len(edited) > 1:
                j = rng.randrange(len(edited) - 1)
                edited[j], edited[j + 1] = edited[j + 1], edited[j]
        candidate = " ".join(edited)
        key = hashlib.blake2b(candidate.strip().encode(), digest_size=8).digest()
        if key not in seen:
            seen.add(key)
            return candidate
    return f"{text} ({i})"


def generate(rows: int) -> tuple[Path, Path]:
    """The N-row train CSV and N/13-row eval CSV (label,text,id), written once and reused."""
    out = SCRATCH / "inputs"
    train, eval_ = out / f"yelp-{rows}-train.csv", out / f"yelp-{rows}-eval.csv"
    if train.exists() and eval_.exists():
        return train, eval_
    out.mkdir(parents=True, exist_ok=True)
    with SOURCE.open(newline="", encoding="utf-8") as f:
        base = list(csv.DictReader(f))
    seen: set = set()  # texts of both files: train and eval never share one
    for path, start, count in ((train, 0, rows), (eval_, rows, eval_rows(rows))):
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["label", "text", "id"])
            for i in range(start, start + count):
                record = base[i % len(base)]
                writer.writerow([record["label"], variant(record["text"], i, seen), f"ds{i:07d}"])
        tmp.replace(path)  # a killed run leaves no half file to reuse
    return train, eval_


# -- measuring -----------------------------------------------------------------------------------

def measured(cmd: list[str], log: Path | None = None, **popen) -> dict:
    """Run `cmd` to the end; its wall and CPU seconds and peak RSS as the kernel reports them at reaping."""
    start = time.perf_counter()
    with open(log, "ab") if log else contextlib.nullcontext() as out:  # no log: the caller's stdout and stderr
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if log else None, **popen)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": round(time.perf_counter() - start, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "rc": proc.returncode}


def meter(argv: list[str]) -> int:
    """`--meter CMD...`: run a stage's cmd, append its figures to $DATA_SCALE_METER_LOG, exit as it did."""
    figures = measured(argv)
    script = next((Path(a).stem for a in argv if a.endswith(".py")), argv[0])
    with open(os.environ[METER_LOG], "a") as f:
        f.write(json.dumps({"script": script, **figures}) + "\n")
    return figures["rc"]


def du(*paths: Path) -> int:
    """Apparent bytes of `paths` in one `du` call: a hard-linked file counts once."""
    existing = [str(p) for p in paths if p.exists()]
    if not existing:
        return 0
    return int(subprocess.run(["du", "-sbc", *existing], capture_output=True, text=True, check=True).stdout.splitlines()[-1].split()[0])


def env(repo: Path | None = None, **extra) -> dict:
    """Offline, this venv's tools first on PATH, and `repo`'s own src/ ahead of the editable install."""
    out = {**os.environ, **OFFLINE, **extra, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if repo:
        out["PYTHONPATH"] = str(repo / "src")
    return out


# -- the pipeline arms -------------------------------------------------------------------------

def sh(cmd: str, cwd: Path, **kw) -> str:
    result = subprocess.run(cmd, cwd=cwd, shell=True, text=True, capture_output=True, env=env(), **kw)
    if result.returncode:
        raise RuntimeError(f"{cmd} failed in {cwd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def make_repo(arm: str, dest: Path, train: Path, eval_: Path) -> Path:
    """A git + DVC repository holding the arm's code (as tests/conftest.py make_repo builds one), its
    stage cmds under --meter, params composed by that code for the Yelp workload on `train`/`eval_`."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if arm == "before":
        sh(f"git -C {REPO} archive {BEFORE} {' '.join(PROJECT_FILES)} | tar -x -C {dest}", REPO)
        dvc_config = sh(f"git show {BEFORE}:.dvc/config", REPO)
    else:
        for name in PROJECT_FILES:
            if (REPO / name).is_dir():
                shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                shutil.copy2(REPO / name, dest / name)
        dvc_config = (REPO / ".dvc" / "config").read_text()
    dvc_yaml = dest / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("cmd: python stages/", f"cmd: python {Path(__file__).resolve()} --meter python stages/"))
    config = dest / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("experiment: quickstart", "experiment: yelp_bert"))
    sh("git init -q && git config user.email bench@local && git config user.name bench && dvc init -q", dest)
    (dest / ".dvc" / "config").write_text(dvc_config)
    overrides = OVERRIDES + [f"data.files={{train: [{train}], eval: [{eval_}]}}"]
    module = "ftpipe.core.config" if arm == "before" else "ftpipe.params"  # where that code composes conf/
    compose = f"import sys, yaml; from {module} import compose; print(yaml.safe_dump(compose(sys.argv[1:]), sort_keys=False))"
    params = subprocess.run([sys.executable, "-c", compose, *overrides], cwd=dest, env=env(dest), text=True, capture_output=True)
    if params.returncode:
        raise RuntimeError(f"composing params for {arm} failed:\n{params.stderr[-3000:]}")
    (dest / "params.yaml").write_text(params.stdout)
    sh("git add -A && git commit -qm init", dest)
    return dest


def pipeline_arm(arm: str, rows: int, train: Path, eval_: Path) -> dict:
    """`dvc repro subset` in a fresh repository of the arm's code: per-stage figures, the whole, bytes."""
    repo = make_repo(arm, SCRATCH / f"{arm}-{rows}", train, eval_)
    meter_log, log = repo.parent / f"{arm}-{rows}.meter.jsonl", repo.parent / f"{arm}-{rows}.repro.log"
    for path in (meter_log, log):
        path.unlink(missing_ok=True)
    repro = measured(["dvc", "repro", "subset"], log, cwd=repo, env=env(repo, **{METER_LOG: str(meter_log)}))
    text = log.read_text(errors="replace")
    if repro.pop("rc"):
        raise RuntimeError(f"dvc repro subset failed for {arm} at {rows} rows (log: {log}):\n{text[-4000:]}")
    metered = [json.loads(line) for line in meter_log.read_text().splitlines()]
    stages = by_stage((f["script"], {k: f[k] for k in ("wall_s", "cpu_s", "peak_rss_mb")}) for f in metered)
    if missing := set(DATA_STAGES) - set(stages):  # a cmd no longer written `python stages/...` is not metered
        raise RuntimeError(f"{arm}: no figures for {', '.join(sorted(missing))}: is its cmd in {repo / 'dvc.yaml'} "
                           "still `cmd: python stages/...`?")
    logged = by_stage((m[1], {"wall_s": float(m[2]), "cpu_s": float(m[3]), "peak_rss_mb": float(m[4])}) for m in DONE.finditer(text))
    data, models, cache = repo / "data", repo / "models", repo / ".dvc" / "cache"
    nbytes = {"input": du(train, eval_), "workspace": du(data, models), "cache": du(cache),
              "workspace_and_cache": du(data, models, cache), "unique": du(train, eval_, data, models, cache),
              "dirs": {d: du(repo / d) for d in ("data/raw", "data/clean", "data/tokenized", "data/subset", "models/base")}}
    return {"arm": arm, "rows": rows, "eval_rows": eval_rows(rows), "repo": str(repo), "stages": stages, "logged": logged,
            "repro": repro, "bytes": nbytes}


def by_stage(runs) -> dict:
    """(script, figures) in the order they ran -> {dvc stage name: figures}; data_file, run once per
    input file, as data_file, data_file@1, ..."""
    stages: dict = {}
    for script, figures in runs:
        name = STAGE_NAMES.get(script, script)
        if name in stages:
            name = f"{name}@{sum(k.split('@')[0] == name for k in stages)}"
        stages[name] = figures
    return stages


def eval_rows(rows: int) -> int:
    return max(1, rows // EVAL_FRACTION)


# -- the HF baseline --------------------------------------------------------------------------

def hf_load_clean(train: str, eval_: str, cache: str) -> None:
    """load_dataset("csv") and what preprocess does to a classification record, as a batched map."""
    import datasets

    dataset = datasets.load_dataset("csv", data_files={"train": train, "eval": eval_}, cache_dir=cache)

    def clean(batch):
        return {"text": [t.replace("\\n", "\n").replace('\\"', '"').strip() for t in batch["text"]],
                "label": [int(label) for label in batch["label"]], "id": [str(i) for i in batch["id"]]}

    dataset.map(clean, batched=True, cache_file_names={s: f"{cache}/clean-{s}.arrow" for s in dataset})


def hf_tokenize(cache: str, model_dir: str, max_length: str) -> None:
    """The cleaned splits, memory-mapped from the cache, through a batched map with the tokenizer."""
    import datasets
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def tokenize(batch):
        return {"input_ids": tokenizer(batch["text"], truncation=True, max_length=int(max_length))["input_ids"], "labels": batch["label"]}

    for split in ("train", "eval"):
        dataset = datasets.Dataset.from_file(f"{cache}/clean-{split}.arrow")
        dataset.map(tokenize, batched=True, batch_size=1000, remove_columns=dataset.column_names,
                    cache_file_name=f"{cache}/tokenized-{split}.arrow")


def hf_arm(rows: int, train: Path, eval_: Path) -> dict:
    """Both phases, each in a fresh process (its own peak), on an empty cache."""
    cache = SCRATCH / f"hf-{rows}"
    if cache.exists():
        shutil.rmtree(cache)  # a warm cache would make map a file read
    cache.mkdir(parents=True)
    me, log = str(Path(__file__).resolve()), SCRATCH / f"hf-{rows}.log"
    log.unlink(missing_ok=True)
    stages = {}
    for phase, args in (("load_clean", [train, eval_, cache]), ("tokenize", [cache, model_dir(rows), max_length()])):
        figures = measured([sys.executable, me, "--hf", phase, *map(str, args)], log, env=env())
        if figures.pop("rc"):
            raise RuntimeError(f"hf {phase} failed at {rows} rows (log: {log}):\n{log.read_text()[-4000:]}")
        stages[phase] = figures
    return {"arm": "hf", "rows": rows, "eval_rows": eval_rows(rows), "stages": stages,
            "bytes": {"input": du(train, eval_), "cache": du(cache), "unique": du(train, eval_, cache)}}


def model_dir(rows: int) -> str:
    """The model folder the ftpipe arm's download_model wrote, or, without that arm, the packaged MiniLM."""
    base = SCRATCH / f"ftpipe-{rows}" / "models" / "base"
    if (base / "tokenizer.json").exists() or (base / "tokenizer_config.json").exists():
        return str(base)
    from benchmarks.common import YELP_OVERRIDES, Spec, compose_params, prepare_model

    return prepare_model(Spec(params=compose_params(YELP_OVERRIDES)), SCRATCH)


def max_length() -> int:
    from benchmarks.common import YELP_OVERRIDES, compose_params

    return compose_params(YELP_OVERRIDES)["task"]["max_length"]


# -- results -----------------------------------------------------------------------------------

def ratio(a, b):
    return round(a / b, 2) if a and b else None


def summary(records: list[dict]) -> dict:
    """The targets' ratios at each size (and preprocess's growth to the largest size from 100k rows and from the smallest),
    then each target at the largest size with its limit and whether it is met."""
    at = {(r["arm"], r["rows"]): r for r in records}

    def get(arm, rows, *keys):  # at[arm, rows][key][key]..., None where that arm or figure is missing
        value = at.get((arm, rows))
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    sizes = sorted({r["rows"] for r in records})
    out: dict = {}
    for n in sizes:
        out[str(n)] = {
            "preprocess_peak_vs_hf_load_clean": ratio(get("ftpipe", n, "stages", "preprocess", "peak_rss_mb"),
                                                      get("hf", n, "stages", "load_clean", "peak_rss_mb")),
            **{f"tokenize_{label}_vs_hf": ratio(get("ftpipe", n, "stages", "tokenize", key), get("hf", n, "stages", "tokenize", key))
               for label, key in (("peak", "peak_rss_mb"), ("wall", "wall_s"), ("cpu", "cpu_s"))},
            **{f"{key}_vs_before": ratio(get("ftpipe", n, "bytes", key), get("before", n, "bytes", key))
               for key in ("workspace_and_cache", "unique")},
            "repro_wall_vs_before": ratio(get("ftpipe", n, "repro", "wall_s"), get("before", n, "repro", "wall_s")),
        }
    if len(sizes) > 1:
        # The target's growth is from 100k rows (the issue's); the smallest size shows the whole range.
        reference = 100_000 if 100_000 in sizes[:-1] else sizes[0]
        largest_peak = get("ftpipe", sizes[-1], "stages", "preprocess", "peak_rss_mb")
        out["preprocess_peak_growth"] = ratio(largest_peak, get("ftpipe", reference, "stages", "preprocess", "peak_rss_mb"))
        out["preprocess_peak_growth_from_smallest"] = ratio(largest_peak, get("ftpipe", sizes[0], "stages", "preprocess", "peak_rss_mb"))
    largest = out[str(sizes[-1])] if sizes else {}
    out["targets"] = {key: {"limit": limit, "value": (v := out.get(key, largest.get(key))), "met": None if v is None else v <= limit}
                      for key, limit in TARGETS.items()}
    return out


def table(results: dict) -> str:
    """The markdown tables of benchmarks/README.md "Data at scale": per-stage figures, bytes, targets."""
    mb = lambda n: f"{n / 2**20:,.0f}"  # noqa: E731
    records = sorted(results["records"], key=lambda r: (r["rows"], ARMS.index(r["arm"])))
    lines = ["| rows | arm | stage | wall (s) | CPU (s) | peak RSS (MB) |", "|---:|---|---|---:|---:|---:|"]
    for r in records:
        files = [s for name, s in r["stages"].items() if name.startswith("data_file")]  # one per input file: summed
        stages = {**({f"data_file ({len(files)} files)": {"wall_s": round(sum(s["wall_s"] for s in files), 2),
                                                         "cpu_s": round(sum(s["cpu_s"] for s in files), 2),
                                                         "peak_rss_mb": max(s["peak_rss_mb"] for s in files)}} if files else {}),
                  **{name: s for name, s in r["stages"].items() if not name.startswith("data_file")},
                  **({"dvc repro subset (whole)": r["repro"]} if "repro" in r else {})}
        lines += [f"| {r['rows']:,} | {r['arm']} | {name} | {s['wall_s']} | {s['cpu_s']} | {s['peak_rss_mb']:,.0f} |"
                  for name, s in stages.items()]
    lines += ["", "| rows | arm | input (MB) | workspace (MB) | cache (MB) | workspace + cache, once (MB) | all, once (MB) |",
              "|---:|---|---:|---:|---:|---:|---:|"]
    for r in records:
        b = r["bytes"]
        lines.append(f"| {r['rows']:,} | {r['arm']} | {mb(b['input'])} | {mb(b['workspace']) if 'workspace' in b else '-'} | "
                     f"{mb(b['cache'])} | {mb(b['workspace_and_cache']) if 'workspace_and_cache' in b else '-'} | {mb(b['unique'])} |")
    lines += ["", "| target | limit | measured | met |", "|---|---:|---:|---|"]
    lines += [f"| {key} | ≤ {t['limit']} | {t['value']} | {t['met']} |" for key, t in results["summary"]["targets"].items()]
    return "\n".join(lines)


def machine() -> dict:
    """run.py's machine info and the CPU flags that decide tokenizer and Arrow speed."""
    from benchmarks.run import machine as base_machine

    info = base_machine(None)
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split(":", 1)[1].split()
        info["cpu_flags"] = {flag: flag in flags for flag in ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")}
    except (OSError, StopIteration):
        pass
    info["load_average"] = os.getloadavg()  # a busy machine's wall times say as much about its neighbours
    return info


def write_plot_file(records: list[dict], path: Path) -> Path:
    """benchmarks/dvc.yaml's data-at-scale plots: one row per (rows, arm, stage)."""
    rows = [{"rows": r["rows"], "arm": r["arm"], "stage": stage, "peak_rss_mb": s["peak_rss_mb"], "wall_s": s["wall_s"]}
            for r in records for stage, s in r["stages"].items() if not stage.startswith("data_file")]
    path.write_text(json.dumps(rows, indent=2) + "\n")
    return path


def main(args, command: str) -> dict:
    """`python -m benchmarks.run --suite data`: every (arm, rows), results saved after each."""
    if not SOURCE.exists():
        raise SystemExit(f"data-scale benchmark: {SOURCE} not found")
    sizes = args.rows or (QUICK_ROWS if args.quick else ROWS)
    if unknown := set(args.arms) - set(ARMS):
        raise SystemExit(f"--arms: unknown {', '.join(sorted(unknown))} (known: {', '.join(ARMS)})")
    arms = [a for a in ARMS if a in args.arms]
    out = args.out or RESULTS
    results = {"command": command, "machine": machine(),
               "overrides": OVERRIDES, "before": BEFORE, "started": time.strftime("%Y-%m-%d %H:%M:%S"), "records": []}

    def save():
        results["summary"] = summary(results["records"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")

    for rows in sizes:
        start = time.perf_counter()
        train, eval_ = generate(rows)
        print(f"[data-scale] {rows:,} rows: inputs ready in {time.perf_counter() - start:.1f} s", flush=True)
        for arm in arms:
            start = time.perf_counter()
            record = hf_arm(rows, train, eval_) if arm == "hf" else pipeline_arm(arm, rows, train, eval_)
            results["records"].append(record)
            save()
            print(f"[data-scale] {arm} at {rows:,} rows ({time.perf_counter() - start:.0f} s): "
                  + ", ".join(f"{k} {s['wall_s']} s {s['peak_rss_mb']:.0f} MB" for k, s in record["stages"].items()), flush=True)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    results["plot_file"] = str(write_plot_file(results["records"], out.with_name(f"{out.stem}-rows.json")))
    save()
    print(table(results))
    print(json.dumps({k: v for k, v in results["summary"].items() if k != "targets"}, indent=2))
    print(f"wrote {out}")
    return results


if __name__ == "__main__":  # the helpers the benchmark runs in their own processes, and the README's tables
    if sys.argv[1] == "--table":  # python -m benchmarks.data_scale --table [results.json]
        print(table(json.loads(Path(sys.argv[2] if len(sys.argv) > 2 else RESULTS).read_text())))
    elif sys.argv[1] == "--meter":
        sys.exit(meter(sys.argv[2:]))
    elif sys.argv[1] == "--hf":
        {"load_clean": hf_load_clean, "tokenize": hf_tokenize}[sys.argv[2]](*sys.argv[3:])
