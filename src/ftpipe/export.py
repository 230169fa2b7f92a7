"""`export`: the tuned model as it goes to the Hub.

A PEFT adapter is merged into its base first (`export.merge`, through ftpipe.tools.merge: the base is
reloaded in full precision), into models/export with a card of its own; a full model goes as it is,
from models/tuned. With `export.push_to_hub`, model, tokenizer and card are pushed to
`export.repo_id`, with the token from the environment (HF_TOKEN) only, never from params.
models/export/ftpipe_export.json records what was exported and where it went.

Both are off by default, so the stage in a default `dvc repro` only records that nothing was asked;
a push asked for offline, or without a token, fails with one line before any heavy work.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ftpipe.core.records import ExportRecord, RunRecord
from ftpipe.core.errors import ConfigError, FtpipeError
from ftpipe.core.io import atomic_output
from ftpipe.core.results import Evaluation

log = logging.getLogger(__name__)
# Not pushed: the Trainer's pickled arguments (the Hub gets no pickles) and this stage's own record.
NOT_PUSHED = ["training_args.bin", ExportRecord.FILENAME, ".*"]


def export(params, tuned_dir: Path, base_dir: Path, out_dir: Path, api=None, evaluation: Evaluation | None = None,
           evaluation_files: dict | None = None, run_record: Path | None = None) -> ExportRecord:
    """Merge (if asked and there is an adapter), write the card with the test scores (`evaluation`, or
    read from `evaluation_files`: see core.results.Evaluation), push (if asked); `api` stands in for
    huggingface_hub.HfApi in tests."""
    from ftpipe.card import CARD, write_card

    cfg, tuned_dir = params.export, Path(tuned_dir)
    token = check_push(cfg) if cfg.push_to_hub else None  # before any work: a push that cannot happen is one line
    if evaluation_files:
        evaluation = Evaluation.load_files(**evaluation_files)
    adapter = (tuned_dir / "adapter_config.json").exists()
    ran = RunRecord.load(run_record) if run_record else None  # the commit and experiment, for the card
    with atomic_output(out_dir) as tmp:
        if adapter and cfg.merge:
            from ftpipe.tools.merge import merge
            from ftpipe.tasks import get_task

            merge(get_task(params.task), tuned_dir, base_dir, tmp, params.model.trust_remote_code)
            write_card(tmp, params, evaluation=evaluation, ran=ran)  # the merged model's own card: loads without peft
            source = tmp
        else:  # the model goes as it is; its card, now with scores, is written here and pushed in its place
            tmp.mkdir()
            write_card(tmp, params, evaluation=evaluation, model_from=tuned_dir, ran=ran)
            source = tuned_dir
        record = ExportRecord(source=str(tuned_dir), merged=source == tmp, pushed=None)
        if cfg.push_to_hub:
            record.pushed = push(source, cfg, token, api, card=tmp / CARD)
        record.save(tmp)
    log.info("export: %s%s", "merged into " + str(out_dir) if record.merged else f"{tuned_dir} as it is",
             f"; pushed to {record.pushed['url']}" if record.pushed else "")
    return record


def check_push(cfg) -> str:
    """The token for a push, or one clear line saying why there can be no push."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ConfigError("export.push_to_hub", "cannot push to the Hub offline (HF_HUB_OFFLINE is set); "
                                                "run export where the Hub is reachable, or set export.push_to_hub=false")
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise ConfigError("export.push_to_hub", "no Hub token: set HF_TOKEN in the environment (never in params)")
    return token


def push(folder: Path, cfg, token: str, api=None, card: Path | None = None) -> dict:
    """Upload the model folder; `card` (the export's, with scores) goes as its README.md."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    try:
        api.create_repo(cfg.repo_id, private=cfg.private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(folder_path=str(folder), repo_id=cfg.repo_id, repo_type="model", commit_message="ftpipe export",
                                   ignore_patterns=NOT_PUSHED + (["README.md"] if card and card.parent != folder else []))
        if card and card.parent != folder:
            commit = api.upload_file(path_or_fileobj=str(card), path_in_repo="README.md", repo_id=cfg.repo_id, repo_type="model",
                                     commit_message="ftpipe export: model card with its scores")
    except Exception as err:  # network, auth, quota: huggingface_hub and requests raise many types
        message = " ".join(str(err).split()) or type(err).__name__
        raise FtpipeError(f"export: push to the Hub repo {cfg.repo_id} failed: {message[:300]}") from None
    return {"repo_id": cfg.repo_id, "url": getattr(commit, "commit_url", None) or f"https://huggingface.co/{cfg.repo_id}",
            "commit": getattr(commit, "oid", None)}
