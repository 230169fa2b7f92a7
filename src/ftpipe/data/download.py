"""`download` for data: bring the raw dataset into `data/raw/<split>/`, as files DVC tracks.

Local files are not copied: `data/raw/<split>/ftpipe_files.json` lists them with their size and
SHA-256, and preprocess reads them in place (checking the hash), so a GB file has one copy, the
user's, and errors name it. Hub datasets are fetched at a pinned revision and written as Parquet;
synthetic data is generated, by a generator of ftpipe's own (data/synthetic.py) or of the task
type's plug-in package (its SYNTHETIC dict), so a new task brings its data with it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ftpipe.core.config import DataConfig
from ftpipe.data.synthetic import GENERATORS
from ftpipe.core.errors import ConfigError, hub_reachable
from ftpipe.core.records import LocalFilesRecord
from ftpipe.core.io import atomic_output, record_hub_source, sha256_file

log = logging.getLogger(__name__)
SPLITS = ("train", "eval")


def download_data(cfg: DataConfig, out_dir: Path, task_type: str | None = None) -> None:
    with atomic_output(out_dir) as tmp:
        for split in SPLITS:
            (tmp / split).mkdir(parents=True)
            if cfg.source == "synthetic":
                _synthetic(cfg.synthetic, split, tmp / split, generators(task_type))
            elif cfg.source == "local":
                _list_local(cfg.files.get(split, []), tmp / split)
            else:
                _from_hub(cfg, split, tmp / split)
        if cfg.source == "hub":
            from huggingface_hub import HfApi

            with hub_reachable("data.hub_path", cfg.hub_path, "download_data"):
                commit = HfApi().dataset_info(cfg.hub_path, revision=cfg.revision).sha
            record_hub_source(tmp, "data.revision", cfg.hub_path, cfg.revision, commit)
    log.info("raw data in %s", out_dir)


def generators(task_type: str | None) -> dict:
    """The synthetic generators a pipeline of this task type can use: ftpipe's and its plug-in's."""
    from ftpipe.tasks import plugin_module

    return {**GENERATORS, **(getattr(plugin_module(task_type), "SYNTHETIC", {}) if task_type else {})}


def _synthetic(settings: dict, split: str, out: Path, known: dict) -> None:
    settings = dict(settings)
    kind = settings.pop("kind", "reviews")
    if kind not in known:
        raise ConfigError("data.synthetic.kind", f"unknown generator '{kind}' (known: {', '.join(known)})")
    n = settings.pop(f"n_{split}", 500)
    settings.pop("n_eval" if split == "train" else "n_train", None)
    seed = settings.pop("seed", 0) + (0 if split == "train" else 1)  # disjoint draws per split
    records = known[kind](n, seed=seed, **settings)
    with open(out / f"{kind}.jsonl", "w") as fh:
        fh.writelines(json.dumps(record) + "\n" for record in records)


def _list_local(files: list[str], out: Path) -> None:
    # Paths as the user gave them (relative to the repository root, where DVC runs stages), so the
    # list hashes the same on every machine; DataConfig has checked each one is a readable file.
    entries = [{"path": name, "bytes": Path(name).stat().st_size, "sha256": sha256_file(name)} for name in files]
    LocalFilesRecord(files=entries).save(out)


def _from_hub(cfg: DataConfig, split: str, out: Path) -> None:
    import datasets

    hub_split = cfg.splits.get(split, split)
    with hub_reachable("data.hub_path", cfg.hub_path, "download_data"):
        dataset = datasets.load_dataset(cfg.hub_path, cfg.hub_name, split=hub_split, revision=cfg.revision)
    dataset.to_parquet(str(out / f"{hub_split.replace('/', '_')}.parquet"))
