"""Stage export: a PEFT adapter merged into its base with a card of its own, pushed with a stubbed Hub
client up to the network; offline or without a token a push is one clear line; off by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from conftest import OFFLINE, REPO
from ftpipe.core.results import Evaluation, Interval

LLAMA = {"model_type": "llama", "vocab_size": 800, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "num_key_value_heads": 2, "intermediate_size": 64, "max_position_embeddings": 256, "tie_word_embeddings": False}
TOKEN = "hf_FAKEexportTOKEN0123456789abcdef"


def params_for(**export):
    from ftpipe.params import validate

    raw = {"export": {"repo_id": "someone/tiny-dialogsum", **export},
           "task": {"name": "dialogsum", "type": "summarization"},
           "model": {"name": "tiny_llama", "source": "tiny"},
           "method": {"name": "lora", "type": "peft", "peft": {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "init_lora_weights": False}},
           "train": {}}
    return validate(raw, tuple(raw))


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> tuple[Path, Path]:
    """(adapter, base): what train leaves for a LoRA run, card included."""
    from ftpipe.card import write_card
    from ftpipe.core.records import TrainRecord
    from ftpipe.methods import get_method
    from ftpipe.models.loading import load_tokenizer
    from ftpipe.models.sources import build_tiny
    from ftpipe.tasks import get_task

    root = tmp_path_factory.mktemp("export")
    base, tuned = root / "base", root / "tuned"
    build_tiny(LLAMA, base)
    (base / "ftpipe_source.json").write_text(json.dumps({"name": "tiny_llama", "source": "tiny", "path": None}))
    params = params_for()
    task = get_task(params.task)
    tokenizer = load_tokenizer(base, task)
    torch.manual_seed(0)
    method = get_method(params.method)
    model = method.build(task, base, tokenizer, params.model)
    # As train saves it: through the method (a run of one process whose Trainer saves the adapter).
    method.save(model, tokenizer, tuned, SimpleNamespace(is_main=True, trainer=SimpleNamespace(save_model=model.save_pretrained)))
    tokenizer.save_pretrained(tuned)
    (tuned / "training_args.bin").write_bytes(b"pickle")  # the Trainer leaves one: it must not be pushed
    TrainRecord(method={"name": "lora", "type": "peft"}, train={"lr": 0.001}, precision="fp32", processes=1,
                base_model={"name": "tiny_llama", "source": "tiny", "path": None}, effective_batch=8,
                trainable_params=10, total_params=100, trainable_fraction=0.1).save(tuned)
    write_card(tuned, params)
    return tuned, base


class StubHub:
    """Stands in for huggingface_hub.HfApi: records the calls, and what the folder held at upload."""

    def __init__(self, token=None):
        self.token, self.calls, self.files = token, [], []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, folder_path, repo_id, ignore_patterns=(), **kwargs):
        import fnmatch

        self.calls.append(("upload_folder", repo_id, kwargs))
        self.files = sorted(p.name for p in Path(folder_path).iterdir() if not any(fnmatch.fnmatch(p.name, g) for g in ignore_patterns))
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc", "oid": "abc"})()

    def upload_file(self, path_or_fileobj, path_in_repo, repo_id, **kwargs):
        self.calls.append(("upload_file", path_in_repo, kwargs))
        self.files = sorted({*self.files, path_in_repo})
        self.card = Path(path_or_fileobj).read_text()
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/def", "oid": "def"})()


EVALUATION = Evaluation({"rougeL": 0.11}, {"rougeL": 0.31}, {"rougeL": Interval(0.2, (0.15, 0.25), 0.0005)},
                        eval_examples=40, eval_records=50, train_records=200)


def test_the_exported_card_carries_the_scores_in_the_hubs_model_index(adapter, tmp_path):
    from ftpipe.export import export

    tuned, base = adapter
    export(params_for(merge=True), tuned, base, tmp_path / "export", evaluation=EVALUATION)
    card = (tmp_path / "export/README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    result = meta["model-index"][0]["results"][0]
    assert result["task"] == {"type": "text-generation"} and result["metrics"] == [{"type": "rougeL", "value": 0.31, "name": "rougeL"}]
    assert "40 examples evaluated of 50 clean records; 200 clean training records" in card
    assert "holds no test scores" in (tuned / "README.md").read_text()  # train's card, written before evaluation


def test_merge_then_push_with_the_token_from_the_environment(adapter, tmp_path, monkeypatch):
    from ftpipe.export import export

    tuned, base = adapter
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    made = []
    monkeypatch.setattr("huggingface_hub.HfApi", lambda token=None: made.append(StubHub(token)) or made[-1])
    record = export(params_for(merge=True, push_to_hub=True, private=True), tuned, base, tmp_path / "export")

    hub = made[0]
    assert hub.token == TOKEN  # from HF_TOKEN, the only place a token comes from
    assert hub.calls[0] == ("create_repo", "someone/tiny-dialogsum", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= set(hub.files)
    assert "adapter_config.json" not in hub.files and "training_args.bin" not in hub.files  # merged; no pickles
    assert record.to_dict() == {"source": str(tuned), "merged": True, "pushed": {"repo_id": "someone/tiny-dialogsum",
                      "url": "https://huggingface.co/someone/tiny-dialogsum/commit/abc", "commit": "abc"}}
    assert json.loads((tmp_path / "export/ftpipe_export.json").read_text()) == record.to_dict()
    # The merged model's card says so and loads with transformers alone.
    card = (tmp_path / "export/README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "transformers" and meta["base_model"] == "tiny_llama" and "merged into the base" in card
    assert "PeftModel" not in card
    leaked = [p.name for p in (tmp_path / "export").rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert leaked == []


def test_without_merge_the_adapter_goes_as_it_is(adapter, tmp_path, monkeypatch):
    from ftpipe.export import export

    tuned, base = adapter
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub = StubHub()
    record = export(params_for(merge=False, push_to_hub=True), tuned, base, tmp_path / "export", api=hub, evaluation=EVALUATION)
    assert record.merged is False and sorted(p.name for p in (tmp_path / "export").iterdir()) == ["README.md", "ftpipe_export.json"]
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= set(hub.files)
    # The README pushed is the export's card, with the scores; train's (without them) stays home.
    assert hub.calls[-1][:2] == ("upload_file", "README.md") and "| rougeL | 0.1100 | 0.3100 | +0.2000 | [+0.1500, +0.2500] | < 0.001 |" in hub.card
    # The adapter names its real base, as its card does (peft writes the folder it was loaded from).
    assert json.loads((tuned / "adapter_config.json").read_text())["base_model_name_or_path"] == "tiny_llama"


def test_by_default_nothing_is_merged_or_pushed(adapter, tmp_path, monkeypatch):
    from ftpipe.export import export

    tuned, base = adapter
    monkeypatch.setattr("huggingface_hub.HfApi", None)  # any use of the Hub would fail
    record = export(params_for(), tuned, base, tmp_path / "export")
    assert record.to_dict() == {"source": str(tuned), "merged": False, "pushed": None}


@pytest.mark.parametrize("env, message", [
    ({"HF_HUB_OFFLINE": "1", "HF_TOKEN": TOKEN}, "cannot push to the Hub offline"),
    ({"HF_HUB_OFFLINE": "0"}, "no Hub token: set HF_TOKEN"),
])
def test_a_push_that_cannot_happen_is_one_line_before_any_work(tmp_path, monkeypatch, env, message):
    """The stage itself, as DVC runs it: exit 1, one `error:` line, nothing written, no model even read."""
    from ftpipe.params import compose

    monkeypatch.chdir(REPO)  # compose reads conf/ from the working directory
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(compose(["export.push_to_hub=true", "export.repo_id=someone/x"])))
    full = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    full.update({**OFFLINE, **env})
    scores = [arg for name in ("base-metrics", "tuned-metrics", "compare", "details", "preprocess") for arg in (f"--{name}", f"metrics/{name}.json")]
    out = subprocess.run([sys.executable, str(REPO / "stages/export.py"), "--tuned", "models/tuned", "--base", "models/base",
                          "--out", "models/export", "--run-record", "runs/train", *scores], cwd=tmp_path, env=full, text=True, capture_output=True, timeout=300)
    assert out.returncode == 1, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: params.yaml: export.push_to_hub: " + message), out.stderr
    assert not (tmp_path / "models").exists()


def test_push_needs_a_repo_id():
    from ftpipe.core.errors import ConfigError

    with pytest.raises(ConfigError, match="export.repo_id"):
        params_for(push_to_hub=True, repo_id=None)


def test_card_text_from_config_is_inert_markdown(adapter, tmp_path):
    from ftpipe.card import write_card

    tuned, _ = adapter
    params = params_for()
    params.task.name = "dialogsum <script>alert(1)</script> | *x*"
    card = write_card(tmp_path, params, model_from=tuned, evaluation=EVALUATION).read_text()
    body = card.split("---\n", 2)[2]  # the YAML metadata above it is data (a tag), not rendered Markdown
    assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt; \\| \\*x\\*" in body
    assert 'base = "tiny_llama"' in body  # the snippet's value as a quoted Python string
