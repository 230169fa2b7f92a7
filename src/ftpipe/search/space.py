"""A search config (conf/search/<name>.yaml) read and checked, and a trial's params drawn from its space.

Each key of `space` is a params key (as `dvc exp run -S` names it) and holds a distribution or a fixed value:

    train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}   # float, log-uniform (log bounds must be > 0)
    train.epochs: {low: 2, high: 6, step: 2}            # int (both bounds whole numbers), every `step`
    train.warmup: 0.0                                    # fixed
    method:                                              # categorical; `when` gives a choice its own sub-space
      choices: [full, lora]
      when: {lora: {method.peft.r: {choices: [4, 8, 16]}}}

Every check is one line naming the file and key, before any trial runs: a key that is not a param of the
composed config (a conditional key: composed with its choice), low >= high, a log bound <= 0, an objective
that is not the validation metric train reports (train.best_metric; never the evaluation set's).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ftpipe.core.errors import FtpipeError, shown

SEARCH_DIR = Path("conf/search")
SAMPLERS = ("tpe", "random", "grid")


class SearchError(FtpipeError):
    """A search config, option or storage that cannot be used: one line naming where."""

    def __init__(self, where, message: str):
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Dist:
    """One key's distribution: kind float | int | categorical | fixed."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()
    when: dict = field(default_factory=dict)  # choice -> tuple[Dist, ...] (categorical only)


@dataclass
class SearchConfig:
    name: str
    source: str  # the file, for error lines
    space: tuple  # Dist, in file order
    n_trials: int = 20
    timeout: float | None = None  # seconds of wall time for this process's trials
    metric: str = "eval_loss"
    direction: str = "minimize"
    sampler: dict = field(default_factory=lambda: {"name": "tpe"})
    pruner: dict = field(default_factory=lambda: {"name": "median"})
    seeds: int = 3
    baseline: str | None = None  # an experiment to promote against (None: the default config)

    def fingerprint(self) -> str:
        """What makes two searches the same study: the space and the objective (not the budget)."""
        text = json.dumps([[_plain(d) for d in self.space], self.metric, self.direction], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(d: Dist) -> dict:
    return {**{k: v for k, v in vars(d).items() if k != "when"}, "when": {c: [_plain(s) for s in sub] for c, sub in d.when.items()}}


def load_search(name: str) -> SearchConfig:
    """conf/search/<name>.yaml (or a path to a YAML file), parsed; shape errors are one line."""
    import yaml

    path = Path(name) if name.endswith((".yaml", ".yml")) else SEARCH_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SEARCH_DIR.glob("*.yaml"))) or "none"
        raise SearchError(path, f"no such search config (known: {known})")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise SearchError(path, f"not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("space"), dict) or not raw["space"]:
        raise SearchError(path, "needs a `space`: params keys, each a distribution or a fixed value")
    return parse(raw, str(path), path.stem)


def parse(raw: dict, source: str, name: str) -> SearchConfig:
    unknown = sorted(set(raw) - {"space", "n_trials", "timeout", "objective", "sampler", "pruner", "seeds", "baseline"})
    if unknown:
        raise SearchError(source, f"unknown key {shown(unknown[0])} (space, n_trials, timeout, objective, sampler, pruner, seeds, baseline)")
    objective = raw.get("objective") or {}
    cfg = SearchConfig(name, source, tuple(dist(str(k), v, source) for k, v in raw["space"].items()),
                       n_trials=_number(raw.get("n_trials", 20), "n_trials", source, 1), timeout=raw.get("timeout"),
                       metric=str(objective.get("metric", "eval_loss")), direction=str(objective.get("direction", "minimize")),
                       sampler=_named(raw.get("sampler", "tpe"), "sampler", source), pruner=_named(raw.get("pruner", "median"), "pruner", source),
                       seeds=_number(raw.get("seeds", 3), "seeds", source, 1), baseline=raw.get("baseline"))
    if cfg.timeout is not None:
        _number(cfg.timeout, "timeout", source, 1)
    if cfg.sampler["name"] not in SAMPLERS:
        raise SearchError(f"{source}: sampler", f"{shown(cfg.sampler['name'])}: one of {', '.join(SAMPLERS)}")
    if cfg.direction not in ("minimize", "maximize"):
        raise SearchError(f"{source}: objective.direction", f"{shown(cfg.direction)}: minimize or maximize")
    return cfg


def _named(value, key: str, source: str) -> dict:
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return dict(value)
    raise SearchError(f"{source}: {key}", "a name, or {name: ..., <its options>}")


def _number(value, key: str, source: str, minimum: float):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise SearchError(f"{source}: {key}", f"must be a number >= {minimum:g}, got {shown(value)}")
    return value


def dist(key: str, spec, source: str) -> Dist:
    """One key's distribution from its spec; a bad one is one line naming the file and key."""
    where = f"{source}: space.{key}"
    if not isinstance(spec, dict):
        return Dist(key, "fixed", choices=(spec,))
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise SearchError(where, "choices: a non-empty list")
        when = spec.get("when") or {}
        stray = [c for c in when if c not in choices]
        if stray:
            raise SearchError(where, f"when: {shown(stray[0])} is not one of the choices")
        sub = {c: tuple(dist(str(k), v, source) for k, v in (s or {}).items()) for c, s in when.items()}
        return Dist(key, "categorical", choices=tuple(choices), when=sub)
    extra = sorted(set(spec) - {"low", "high", "log", "step", "type"})
    if extra or "low" not in spec or "high" not in spec:
        raise SearchError(where, "a distribution is {low, high} with optional log or step, or {choices: [...]}")
    low, high = spec["low"], spec["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise SearchError(where, f"low and high must be numbers, got {shown(low)} and {shown(high)}")
    if low >= high:
        raise SearchError(where, f"low ({low:g}) must be below high ({high:g})")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise SearchError(where, f"a log distribution needs low > 0, got {low:g}")
    step = spec.get("step")
    if step is not None and (not isinstance(step, (int, float)) or step <= 0 or (log and step != 1)):
        raise SearchError(where, f"step must be > 0 (and none with log), got {shown(step)}")
    whole = spec.get("type", "int" if all(isinstance(v, int) for v in (low, high, step or 1)) and not log else "float")
    if whole not in ("int", "float"):
        raise SearchError(where, f"type {shown(whole)}: int or float")
    return Dist(key, whole, float(low), float(high), log, step)


def suggest(trial, space: tuple) -> dict:
    """{params key: value} for a trial, a conditional sub-space only where its choice was drawn."""
    out = {}
    for d in space:
        if d.kind == "fixed":
            out[d.key] = d.choices[0]
            continue
        if d.kind == "categorical":
            value = trial.suggest_categorical(d.key, list(d.choices))
            out[d.key] = value
            out.update(suggest(trial, d.when.get(value, ())))
        elif d.kind == "int":
            out[d.key] = trial.suggest_int(d.key, int(d.low), int(d.high), step=int(d.step or 1), log=d.log)
        else:
            out[d.key] = trial.suggest_float(d.key, d.low, d.high, step=d.step, log=d.log)
    return out


def grid(cfg: SearchConfig) -> dict:
    """GridSampler's search space: every key a list of values (categorical, or int/float with a step)."""
    import numpy as np

    out = {}
    for d in cfg.space:
        where = f"{cfg.source}: space.{d.key}"
        if d.when:
            raise SearchError(where, "the grid sampler takes no conditional sub-spaces (`when`): use tpe or random")
        if d.kind in ("fixed", "categorical"):
            out[d.key] = list(d.choices)
        elif d.step is None:
            raise SearchError(where, "the grid sampler needs a step or choices for every range")
        else:
            values = np.arange(d.low, d.high + d.step / 2, d.step)
            out[d.key] = [int(v) for v in values] if d.kind == "int" else [float(v) for v in values]
    return out


def overrides(values: dict) -> list[str]:
    """The `-S key=value` list for a trial's params (floats to 6 significant digits, as Hydra reads them back)."""
    return [f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()]


def check(cfg: SearchConfig, fixed: list[str]) -> dict:
    """Every space key a param of the config it runs in, the objective the validation metric train reports.
    Returns the composed params of the default (the fixed overrides alone)."""
    params = _compose(fixed, cfg.source)
    _check_keys(cfg.space, params, fixed, cfg.source)
    train = params.get("train") or {}
    best = str(train.get("best_metric", "eval_loss"))
    if cfg.metric.removeprefix("eval_") != best.removeprefix("eval_"):
        raise SearchError(f"{cfg.source}: objective.metric", f"{shown(cfg.metric)} is not a validation metric: the objective is what train "
                                                              f"reports on its held-out split, train.best_metric ({best}), never an evaluation-set score")
    if not train.get("validation_fraction"):
        raise SearchError(f"{cfg.source}: objective.metric", "train.validation_fraction is 0: no validation score to search on")
    if cfg.metric.endswith("loss") and cfg.direction != "minimize":
        raise SearchError(f"{cfg.source}: objective.direction", f"{cfg.metric} is a loss: minimize it")
    return params


def _compose(overrides: list[str], source: str) -> dict:
    from ftpipe.params import compose

    try:
        return compose(overrides)
    except Exception as err:  # noqa: BLE001  (Hydra's and OmegaConf's errors: an override that cannot compose)
        raise SearchError(source, f"{' '.join(overrides[-1:])}: does not compose: {' '.join(str(err).split())[:160]}") from None


def _check_keys(space: tuple, params: dict, fixed: list[str], source: str) -> None:
    for d in space:
        if not _has(params, d.key):
            raise SearchError(f"{source}: space.{d.key}", "not a param of the composed config (see params.yaml)")
        group = isinstance(params[d.key] if "." not in d.key else None, dict)  # a config group (method=lora): each choice composes
        for choice in d.choices if d.kind == "categorical" and (group or d.when) else ():
            chosen = [*fixed, f"{d.key}={choice}"]
            composed = _compose(chosen, source)
            _check_keys(d.when.get(choice, ()), composed, chosen, source)


def _has(params: dict, key: str) -> bool:
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
