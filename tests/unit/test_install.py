"""The pinned install: requirements/cpu.txt (scripts/lock.sh) is what scripts/setup.sh installs."""

import re
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
OUTSIDE_LOCK = {"torch"}  # its CPU build is not on PyPI: setup.sh installs TORCH_SPEC on its own, first


def pins(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, sha256 hashes) of a `uv pip compile --generate-hashes` file."""
    out, name = {}, None
    for line in path.read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", line):
            name = canonicalize_name(m[1])
            out[name] = (m[2], [])
        elif m := re.search(r"--hash=sha256:([0-9a-f]{64})", line):
            out[name][1].append(m[1])
    return out


LOCK = pins(REPO / "requirements/cpu.txt")


def declared() -> list[Requirement]:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def test_every_pin_has_a_hash_and_a_version_the_ranges_allow():
    assert LOCK and all(hashes for _, hashes in LOCK.values()), [n for n, (_, h) in LOCK.items() if not h]
    for req in declared():
        name = canonicalize_name(req.name)
        if name in OUTSIDE_LOCK or (req.marker and not req.marker.evaluate()):
            continue
        assert name in LOCK, f"pyproject.toml needs {req}, requirements/cpu.txt has no {name}: run bash scripts/lock.sh"
        assert req.specifier.contains(LOCK[name][0], prereleases=True), \
            f"requirements/cpu.txt pins {name}=={LOCK[name][0]}, outside pyproject.toml's {req}: run bash scripts/lock.sh"


def test_this_environment_is_the_lock_and_the_lock_is_closed():
    """CI installs with scripts/setup.sh: what runs the tests is exactly the lock, and every library a
    locked one needs is locked too (setup.sh installs with --no-deps, so a missing one would be absent)."""
    env = {**default_environment(), "extra": ""}
    for name, (version, _) in LOCK.items():
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            pytest.fail(f"{name} is in requirements/cpu.txt but not installed: run bash scripts/setup.sh")
        assert dist.version == version, f"{name} {dist.version} is installed, the lock says {version}: run bash scripts/setup.sh"
        for req in map(Requirement, dist.requires or []):
            if (req.marker is None or req.marker.evaluate(env)) and canonicalize_name(req.name) not in LOCK.keys() | OUTSIDE_LOCK:
                pytest.fail(f"{name} needs {req}, not in requirements/cpu.txt: run bash scripts/lock.sh")


def test_provenance_records_every_locked_library_that_can_change_a_result():
    from ftpipe.training.provenance import RESULT_LIBRARIES

    for name in RESULT_LIBRARIES:
        assert name == "ftpipe" or canonicalize_name(name) in LOCK.keys() | OUTSIDE_LOCK, name
    for must in ("scikit-learn", "tokenizers", "evaluate", "safetensors", "bitsandbytes", "rouge-score", "torch", "transformers"):
        assert must in RESULT_LIBRARIES


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
