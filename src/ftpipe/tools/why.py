"""Why two runs differ: everything their records and dvc.lock files say differs, grouped as a reviewer asks.

- evaluation set: not the same examples or references (then nothing else is comparable; listed first);
- params: flattened keys whose values differ (the seed among them);
- code: the code files (src/, stages/) whose hashes differ, with the stages that read them;
- data: the data stages' outputs that differ (inputs, raw, clean, tokenized, subset, the base model);
- environment: library versions, the machine (device, CPU, matmul flags, torch threads), the precision
  `auto` resolved to in training and evaluation, processes, effective batch, a resumed step.
Two runs that differ in train.seed and nothing else of params, code or data are "seed only".
"""

from __future__ import annotations

from dataclasses import dataclass

CODE_PREFIXES = ("src/", "stages/")
# What the composition adds to params.yaml for DVC's own use: it changes whenever conf/ does, a change
# the code and params entries already show.
DERIVED = ("conf_digest", "plot_specs", "data_inputs")
# The stages whose outputs are the data a run trains and is evaluated on (dvc.yaml), before train.
DATA_STAGES = ("download_data", "download_model", "data_file", "preprocess", "tokenize", "subset")


@dataclass(frozen=True)
class Difference:
    kind: str  # evaluation set | params | code | data | environment
    key: str
    a: object
    b: object


def differences(a, b) -> list[Difference]:
    """Everything that differs between runs `a` and `b` (tools.runs.Run), evaluation set first."""
    found = eval_set(a, b)
    pa, pb = flatten(a.params), flatten(b.params)
    found += [Difference("params", key, pa.get(key), pb.get(key)) for key in sorted(set(pa) | set(pb))
              if pa.get(key) != pb.get(key) and not key.startswith(DERIVED)]
    found += lock_differences(a.lock, b.lock)
    found += [Difference("environment", key, va, vb) for key, (va, vb) in environment(a, b).items() if va != vb]
    return found


def label(found: list[Difference]) -> str:
    """A one-line summary: "seed only" where train.seed is the only params, code or data difference."""
    inputs = [d for d in found if d.kind in ("evaluation set", "params", "code", "data")]
    if not inputs:
        return "the same params, code and data" + ("; the environment differs" if found else "")
    if [d.key for d in inputs] == ["train.seed"]:
        return "seed only" + ("; the environment differs too" if len(found) > 1 else "")
    kinds = sorted({d.kind for d in inputs}, key=["evaluation set", "params", "code", "data"].index)
    return "differ in " + ", ".join(kinds)


def eval_set(a, b) -> list[Difference]:
    ids_a, ids_b = {row.id: row.reference for row in a.rows}, {row.id: row.reference for row in b.rows}
    if set(ids_a) != set(ids_b):
        only_a, only_b = len(set(ids_a) - set(ids_b)), len(set(ids_b) - set(ids_a))
        return [Difference("evaluation set", "example ids", f"{len(ids_a)} ({only_a} not in the other)",
                           f"{len(ids_b)} ({only_b} not in the other)")]
    changed = sorted(i for i in ids_a if ids_a[i] != ids_b[i])
    return [Difference("evaluation set", "references", f"{len(changed)} of {len(ids_a)} differ, e.g. id {changed[0]}", "")] if changed else []


def flatten(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out: dict = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}": value})
    return out


def lock_differences(lock_a: dict, lock_b: dict) -> list[Difference]:
    """The code files (deps under src/, stages/) whose hashes differ, each with the stages that read it,
    then the data stages' outputs that differ, between two dvc.lock files."""
    stages_a, stages_b = lock_a.get("stages") or {}, lock_b.get("stages") or {}
    readers: dict[str, list[str]] = {}
    data = []
    for stage in sorted(set(stages_a) | set(stages_b)):
        deps_a, deps_b = _hashes(stages_a.get(stage), "deps"), _hashes(stages_b.get(stage), "deps")
        for path in sorted(set(deps_a) | set(deps_b)):
            if path.startswith(CODE_PREFIXES) and deps_a.get(path) != deps_b.get(path):
                readers.setdefault(path, []).append(stage)
        if stage.split("@")[0] in DATA_STAGES:
            outs_a, outs_b = _hashes(stages_a.get(stage), "outs"), _hashes(stages_b.get(stage), "outs")
            data += [Difference("data", path, outs_a.get(path), outs_b.get(path))
                     for path in sorted(set(outs_a) | set(outs_b)) if outs_a.get(path) != outs_b.get(path)]
    code = [Difference("code", path, f"read by {_few(stages)}", "") for path, stages in sorted(readers.items())]
    return code + data


def _few(stages: list[str]) -> str:
    return ", ".join(stages) if len(stages) <= 3 else f"{len(stages)} stages: {', '.join(stages[:3])}, ..."


def _hashes(stage: dict | None, section: str) -> dict[str, str | None]:
    return {entry["path"]: entry.get("md5") for entry in (stage or {}).get(section) or []}


def environment(a, b) -> dict[str, tuple]:
    """What each run recorded of where and how it ran, key by key."""
    out: dict[str, tuple] = {}
    records = [(r.trained, r.ran, r.timing) for r in (a, b)]
    versions = [(t.versions if t else {}) for t, _, _ in records]
    for lib in sorted(set(versions[0]) | set(versions[1])):
        out[f"version of {lib}"] = (versions[0].get(lib), versions[1].get(lib))
    out["device"] = tuple(ran.device if ran else None for _, ran, _ in records)
    machines = [flatten((ran.machine or {}) if ran else {}) for _, ran, _ in records]
    for key in sorted(set(machines[0]) | set(machines[1])):
        out[f"machine {key}"] = (machines[0].get(key), machines[1].get(key))
    out["train precision"] = tuple(t.precision if t else None for t, _, _ in records)
    out["evaluation precision"] = tuple(timing.precision if timing else None for _, _, timing in records)
    out["processes"] = tuple(t.processes if t else None for t, _, _ in records)
    out["effective batch"] = tuple(t.effective_batch if t else None for t, _, _ in records)
    out["resumed from step"] = tuple(ran.resumed_from_step if ran else None for _, ran, _ in records)
    return out
