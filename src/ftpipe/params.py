"""Params as stages get them: params.yaml loaded, each section checked against its schema (the
plug-ins' own for task and method), the rules across sections, and Hydra's composition of conf/.

`conf/` is composed by Hydra into `params.yaml` (DVC does this on `dvc exp run`;
`python -m ftpipe.params` does it by hand). Stages read `params.yaml`, never `conf/`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ftpipe.core.config import (DataConfig, DistributedConfig, EvaluateConfig, ExportConfig, ModelConfig, SubsetConfig,
                           TokenizeConfig, TrainConfig)
from ftpipe.core.errors import ConfigError, fail, shown

CONF_DIR = Path("conf")  # stages and tools run from the repository root, as DVC does
PARAMS = Path("params.yaml")


SCHEMAS = {
    "data": DataConfig,
    "model": ModelConfig,
    "tokenize": TokenizeConfig,
    "subset": SubsetConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "export": ExportConfig,
}


@dataclass
class Params:
    """The sections a stage asked for; the others stay None so a stage cannot read what it does not declare."""

    task: Any = None
    data: Optional[DataConfig] = None
    model: Optional[ModelConfig] = None
    method: Any = None
    tokenize: Optional[TokenizeConfig] = None
    subset: Optional[SubsetConfig] = None
    train: Optional[TrainConfig] = None
    evaluate: Optional[EvaluateConfig] = None
    export: Optional[ExportConfig] = None


def _validate(section: str, schema, value) -> Any:
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), value or {})
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = f"{section}.{err.full_key}" if getattr(err, "full_key", None) else section
        message = str(err).splitlines()[0]
        raise ConfigError(key, message) from None


# What composition writes besides the sections: dvc.yaml's per-file stages and plot slots, conf/'s digest.
COMPUTED = ("data_inputs", "plot_specs", "conf_digest")


def validate(raw: dict, sections: tuple[str, ...]) -> Params:
    """Check the named sections of a params dict against their schemas, and that it holds no unknown section."""
    known = [*SCHEMAS, "task", "method", *COMPUTED]
    for key in raw:
        if key not in known:
            import difflib

            close = difflib.get_close_matches(str(key), known, n=1)
            raise ConfigError(shown(key), "unknown params section" + (f" (did you mean {close[0]}?)" if close else f" ({', '.join(known)})"))
    out = Params()
    for section in sections:
        if section not in raw:
            raise ConfigError(section, "section missing")
        if section == "task":  # plug-in sections: the schema is the plug-in's own
            from ftpipe.tasks import task_schema

            schema = task_schema(raw["task"])
        elif section == "method":
            from ftpipe.methods import method_schema

            schema = method_schema(raw["method"])
        else:
            schema = SCHEMAS[section]
        setattr(out, section, _validate(section, schema, raw[section]))
    if out.data is not None and out.data.source == "local":
        check_data_suffixes(out.data, raw.get("task"))
    if out.task is not None and out.method is not None:
        check_fit(out.task.type, out.method)
    if out.train is not None and out.method is not None:
        check_strategy(out.train.distributed, out.method)
    if out.train is not None and out.train.packing:
        check_packing(out.task, out.method)
    return out


def check_fit(task_type: str, method) -> None:
    """The method's needs against what the task offers (Task.capabilities): one line naming what is missing."""
    from ftpipe.tasks import fitting, plugin_module
    from ftpipe.tasks.base import CAPABILITIES

    unknown = [need for need in method.needs if need not in CAPABILITIES]
    if unknown:
        raise ConfigError("method.needs", f"unknown capability {', '.join(unknown)} (known: {', '.join(CAPABILITIES)})")
    missing = [need for need in method.needs if need not in plugin_module(task_type).Task.capabilities]
    if missing:
        raise ConfigError("method", f"'{method.name}' does not fit a {task_type} task: it needs "
                                    + "; ".join(f"{need}, {CAPABILITIES[need]}" for need in missing)
                                    + f" (task types that have it: {', '.join(fitting(method.needs)) or 'none'})")


def check_data_suffixes(data, raw_task) -> None:
    """Every data.files entry is of a type the task's plug-in reads (Task.file_suffixes: CoNLL files for
    token classification, say), whichever sections the stage loads: params.yaml always names the task."""
    from ftpipe.core.config import check_data_type
    from ftpipe.tasks import plugin_module

    suffixes = plugin_module((raw_task or {}).get("type", "<missing>")).Task.file_suffixes
    for split, paths in data.files.items():
        for path in paths:
            check_data_type(f"data.files.{split}", path, suffixes)


def check_packing(task, method) -> None:
    """train.packing (ftpipe.packing) where it cannot work, refused at load: a task whose rows are not
    causal-LM rows of input_ids and labels (its plug-in's Task.packs), or a method that puts virtual
    tokens before the text (its MethodConfig.packing_conflict: prompt and prefix tuning)."""
    if task is not None:
        from ftpipe.tasks import TASK_TYPES, plugin_module

        if not plugin_module(task.type).Task.packs:
            able = [t for t in TASK_TYPES if plugin_module(t).Task.packs]
            raise ConfigError("train.packing", f"a {task.type} task cannot pack (causal-LM tasks can: {', '.join(able) or 'none'}); "
                                               "set train.packing=false")
    problem = method.packing_conflict() if method is not None else None
    if problem:
        raise ConfigError("train.packing", f"method '{method.name}' {problem}; set train.packing=false")


def check_strategy(distributed: DistributedConfig, method) -> None:
    """Method x strategy combinations the libraries (or ftpipe's methods) cannot run, refused at load.

    A 4-bit base (QLoRA) under FSDP or ZeRO-3: bitsandbytes and peft can shard one only when it is
    loaded without a device_map and stored in the compute dtype (bnb_4bit_quant_storage); ftpipe's
    quantized methods place each process's copy on its own GPU (device_map), which transformers
    refuses under ZeRO-3 and FSDP cannot shard. DDP and ZeRO-2 leave the frozen base whole: supported.
    """
    sharded = distributed.strategy == "fsdp" or (distributed.strategy == "deepspeed" and distributed.zero_stage == 3)
    if sharded and getattr(method, "quantization", None):
        where = "fsdp" if distributed.strategy == "fsdp" else "deepspeed ZeRO-3"
        raise ConfigError("train.distributed", f"method '{method.name}' (a 4-bit base) cannot run under {where}: "
                                               "use distributed=ddp or distributed=deepspeed_zero2, or method=lora")


def load_params(*sections: str, path: Path = PARAMS) -> Params:
    """Load and validate the params sections a stage declares in dvc.yaml."""
    if not path.exists():
        raise ConfigError(str(path), "file not found (run from the repository root)")
    try:
        with open(path) as fh:
            raw = yaml.safe_load(fh) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(str(path), f"not valid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "expected a mapping of params sections")
    return validate(raw, sections)


def conf_digest(conf_dir: Path = CONF_DIR) -> str:
    """SHA-256 over conf/'s YAML files (relative path and bytes, in path order): the same on every machine.

    params.yaml records it (`conf_digest`, by a resolver at compose time, in DVC's composition too),
    so the summary can tell a `dvc repro` that conf/ was edited after params.yaml was composed."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(Path(conf_dir).rglob("*.yaml")):
        digest.update(path.relative_to(conf_dir).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def compose(overrides: list[str] | None = None) -> dict:
    """Compose conf/ as DVC's Hydra integration does, as a plain dict."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR.resolve()), version_base=None):
        cfg: DictConfig = hydra_compose(config_name="config", overrides=overrides or [])
    return OmegaConf.to_container(cfg, resolve=True)


def main() -> None:
    """`python -m ftpipe.params [overrides...]`: rewrite params.yaml from conf/."""
    from hydra.errors import HydraException, OverrideParseException

    from ftpipe.core.errors import FtpipeError

    try:
        params = compose(sys.argv[1:])
    except (HydraException, OmegaConfBaseException, FtpipeError) as err:
        # A mistyped override: Hydra's message (its options, without its search path) on one line, not a traceback.
        message = str(err).split("Config search path:")[0]
        if isinstance(err, OverrideParseException):  # Hydra's parser does not say which override
            message = f"overrides {' '.join(sys.argv[1:])}: {message}"
        fail(message)
    except yaml.YAMLError as err:  # a conf/ file that is not YAML, or asks for a Python object (!!python/...)
        mark = getattr(err, "problem_mark", None)
        where = f"{mark.name}: line {mark.line + 1}" if mark else str(CONF_DIR)
        fail(f"{where}: not valid YAML: {shown(getattr(err, 'problem', None) or err, 120)}")
    with open(PARAMS, "w") as fh:
        yaml.safe_dump(params, fh, sort_keys=False)
    print(f"wrote {PARAMS}")


if __name__ == "__main__":
    main()
