"""`tokenize` and `subset`: the generic dataset steps between preprocess and train."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ftpipe.core.records import ColumnsRecord
from ftpipe.core.io import atomic_output, read_json, scratch_dir, sha256_file
from ftpipe.models.loading import load_tokenizer

log = logging.getLogger(__name__)
SPLITS = ("train", "eval")
SHARD = "data-00000-of-00001.arrow"  # save_to_disk's name for a one-shard dataset


def tokenize(task, cfg, clean_dir: Path, model_dir: Path, out_dir: Path, trust_remote_code: bool = False) -> None:
    import datasets

    task.cfg.check_model_limit(model_dir)  # the first stage that sees the model: fail here, not at training
    tokenizer = load_tokenizer(model_dir, task, trust_remote_code=trust_remote_code)
    if not tokenizer.is_fast:
        log.warning("%s has no fast tokenizer: tokenization will be slow", model_dir)
    # The Parquet file is converted to Arrow and every map writes its result beside it, all in a
    # fresh scratch folder on the output's disk, removed at the end: memory-mapped, so memory does not
    # grow with the rows, and no cache survives to be reused (or to fill the home folder). The
    # conversion runs in a child process: the memory Arrow's allocator keeps after it (130 MB at 650k
    # reviews) then never sits beside the tokenizing.
    with atomic_output(out_dir) as tmp, scratch_dir(out_dir) as scratch, \
            ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        for split in SPLITS:
            arrow = child.submit(parquet_to_arrow, Path(clean_dir) / f"{split}.parquet", scratch / split).result()
            dataset = datasets.Dataset.from_file(arrow, split="train")  # from_parquet's split name, whatever the file
            features = task.tokenize(dataset, tokenizer, split, cfg.num_proc, cfg.batch_size)
            save(features, tmp / split)
            log.info("%s: %d examples -> %d features", split, len(dataset), len(features))
        # The task's grouping and stratifying columns, beside the splits: subset draws by them without
        # reading the task's params.
        ColumnsRecord(group_column=task.group_column, stratify_column=task.stratify_column).save(tmp)


def parquet_to_arrow(parquet: Path, folder: Path) -> str:
    """The Arrow file datasets converts `parquet` into, under `folder`."""
    import datasets

    return datasets.Dataset.from_parquet(str(parquet), cache_dir=str(folder)).cache_files[0]["filename"]


def subset(cfg, in_dir: Path, out_dir: Path) -> None:
    import datasets

    datasets.disable_caching()  # else select/flatten write cache files into data/tokenized, a dep

    columns = ColumnsRecord.load(in_dir)
    with atomic_output(out_dir) as tmp:
        for split, size in (("train", cfg.train_size), ("eval", cfg.eval_size)):
            dataset = datasets.load_from_disk(str(Path(in_dir) / split))
            chosen = draw(dataset, size, cfg.seed, cfg.stratify, cfg.first, columns.group_column, columns.stratify_column,
                          key=f"subset.{split}_size")
            save(chosen, tmp / split)
            log.info("%s: %d of %d rows", split, len(chosen), len(dataset))
        columns.save(tmp)


def save(dataset, path: Path) -> None:
    """save_to_disk's layout, with a fingerprint of the bytes saved in state.json instead of datasets' own.

    datasets fingerprints a table read from Parquet by the file's path and mtime, so identical tokens
    got a new data/tokenized hash whenever data/clean was rewritten or touched, and DVC reran
    training on unchanged data. The Arrow files are the same bytes for the same rows; hashing them
    (seconds per GB) makes the whole folder identical for identical content, on every machine. The
    fingerprint only names the data for datasets' cache, which ftpipe never reuses.
    """
    path = Path(path)
    source = sole_arrow_file(dataset)
    if source is None:
        dataset.save_to_disk(str(path))
    else:
        # The dataset is exactly one Arrow file (a map's output): rewrite it read with plain reads,
        # batch by batch. save_to_disk reads it through its memory map, and every page read that way
        # counts in the stage's resident memory: at 650k reviews, 490 MB more than the tokenizing.
        # The schema metadata is rewritten too: the map's names its fingerprint, which datasets
        # derives from the input file's path and mtime.
        import pyarrow as pa
        from datasets.arrow_writer import ArrowWriter
        from datasets.utils.py_utils import asdict

        path.mkdir(parents=True)
        with pa.OSFile(str(source)) as source_file, ArrowWriter(features=dataset.features, path=str(path / SHARD)) as writer:
            for batch in pa.ipc.open_stream(source_file):
                writer.write_table(pa.Table.from_batches([batch]))  # the map's batches, in order
            writer.finalize()
        state = {key: dataset.__dict__[key] for key in
                 ("_format_columns", "_format_kwargs", "_format_type", "_output_all_columns")}
        state.update(_split=str(dataset.split) if dataset.split is not None else None, _data_files=[{"filename": SHARD}])
        info = asdict(dataset.info)
        (path / "dataset_info.json").write_text(json.dumps({key: info[key] for key in sorted(info)}, indent=2))
        (path / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
    digest = hashlib.sha256()
    for name in sorted(p.name for p in path.glob("*.arrow")):
        digest.update(sha256_file(path / name).encode())
    state = read_json(path / "state.json")
    state["_fingerprint"] = digest.hexdigest()[:16]
    (path / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))


def sole_arrow_file(dataset) -> Path | None:
    """The Arrow file that holds exactly this dataset's rows, if there is one: no index mapping, no
    in-memory edits on top of the file (a map's or load_from_disk's output). A new schema metadata
    is no edit of the rows: load_from_disk takes the features from dataset_info.json."""
    from datasets.table import MemoryMappedTable

    table = dataset._data
    edits = [name for name, _, _ in getattr(table, "replays", []) if name != "replace_schema_metadata"]
    if dataset._indices is not None or len(dataset.cache_files) != 1 or not isinstance(table, MemoryMappedTable) or edits:
        return None
    return Path(dataset.cache_files[0]["filename"])


def draw(dataset, size: int | None, seed: int, stratify: bool, first: bool = False,
         group_column: str | None = None, stratify_column: str | None = None, key: str = "subset size"):
    """A seeded subset of `size` examples (all of them when size is None or too large).

    Indices are kept in dataset order, so the same seed and size always give the same rows.
    With `first`, the first `size` examples in file order (a published benchmark's "first N").
    Features that share a `group_column` value are one example; `stratify` keeps the class
    balance of `stratify_column`. A size above the examples there are is warned about (`key` names it).
    """
    grouped = group_column in dataset.column_names
    if grouped:
        groups = np.asarray(dataset[group_column])
        unique = list(dict.fromkeys(groups.tolist()))
    available = len(unique) if grouped else len(dataset)
    if size is not None and size > available:  # fewer rows than asked for: the run is not the one params describe
        log.warning("%s %d: only %d examples; using all of them", key, size, available)
    if grouped:
        if size is None or size >= len(unique):
            return dataset
        chosen = range(size) if first else np.random.default_rng(seed).choice(len(unique), size=size, replace=False)
        keep = {unique[i] for i in chosen}
        return dataset.select(np.flatnonzero([g in keep for g in groups]))
    if size is None or size >= len(dataset):
        return dataset
    if first:
        return dataset.select(range(size))
    if stratify and stratify_column in dataset.column_names:
        from sklearn.model_selection import train_test_split

        from ftpipe.core.errors import ConfigError

        labels = dataset[stratify_column]
        classes, total = len(set(labels)), len(dataset)
        # sklearn needs each class both in the subset and in the rest: say so in params' terms, not a traceback
        if min(size, total - size) < classes:
            raise ConfigError("subset.stratify", f"a stratified subset of {size} of {total} examples needs one per class in it and "
                                                 f"outside it, and there are {classes} classes (use a size in {classes}..{total - classes} "
                                                 f"or subset.stratify=false)")
        try:
            idx, _ = train_test_split(np.arange(total), train_size=size, stratify=labels, random_state=seed)
        except ValueError as err:  # e.g. a class with a single example
            raise ConfigError("subset.stratify", f"cannot stratify a subset of {size} of {total} examples: {err}") from None
    else:
        idx = np.random.default_rng(seed).choice(len(dataset), size=size, replace=False)
    return dataset.select(np.sort(idx))
