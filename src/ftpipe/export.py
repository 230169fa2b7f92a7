"""`export`: the tuned model as it goes to the Hub.

A PEFT adapter is merged into its base first (`export.merge`, through ftpipe.merge: the base is
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

from ftpipe import records
from ftpipe.errors import ConfigError, FtpipeError
from ftpipe.io import atomic_output

log = logging.getLogger(__name__)
# Not pushed: the Trainer's pickled arguments (the Hub gets no pickles) and this stage's own record.
NOT_PUSHED = ["training_args.bin", records.EXPORT.filename, ".*"]


def export(params, tuned_dir: Path, base_dir: Path, out_dir: Path, api=None) -> dict:
    """Merge (if asked and there is an adapter), push (if asked); `api` stands in for huggingface_hub.HfApi in tests."""
    cfg, tuned_dir = params.export, Path(tuned_dir)
    token = check_push(cfg) if cfg.push_to_hub else None
    adapter = (tuned_dir / "adapter_config.json").exists()
    with atomic_output(out_dir) as tmp:
        if adapter and cfg.merge:
            from ftpipe.card import write_card
            from ftpipe.merge import merge
            from ftpipe.tasks import get_task

            merge(get_task(params.task), tuned_dir, base_dir, tmp, params.model.trust_remote_code)
            write_card(tmp, params)  # the merged model's own card: loads without peft
            source = tmp
        else:
            tmp.mkdir()
            source = tuned_dir
        record = {"source": str(tuned_dir), "merged": source == tmp, "pushed": None}
        if cfg.push_to_hub:
            record["pushed"] = push(source, cfg, token, api)
        records.EXPORT.write(tmp, record)
    log.info("export: %s%s", "merged into " + str(out_dir) if record["merged"] else f"{tuned_dir} as it is",
             f"; pushed to {record['pushed']['url']}" if record["pushed"] else "")
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


def push(folder: Path, cfg, token: str, api=None) -> dict:
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    try:
        api.create_repo(cfg.repo_id, private=cfg.private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(folder_path=str(folder), repo_id=cfg.repo_id, repo_type="model",
                                   commit_message="ftpipe export", ignore_patterns=NOT_PUSHED)
    except Exception as err:  # network, auth, quota: huggingface_hub and requests raise many types
        message = " ".join(str(err).split()) or type(err).__name__
        raise FtpipeError(f"export: push to the Hub repo {cfg.repo_id} failed: {message[:300]}") from None
    return {"repo_id": cfg.repo_id, "url": getattr(commit, "commit_url", None) or f"https://huggingface.co/{cfg.repo_id}",
            "commit": getattr(commit, "oid", None)}
