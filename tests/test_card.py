"""The model card train writes, and the README's loading code: each loads a tuned model with plain
transformers/peft and runs it, from a copy in another directory where the card says so."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run

pytestmark = pytest.mark.slow


def card_parts(card: Path) -> tuple[dict, str, str]:
    """(YAML metadata, text, the Python block) of a model card."""
    text = card.read_text()
    _, meta, body = text.split("---\n", 2)
    return yaml.safe_load(meta), body, re.search(r"```python\n(.*?)```", body, flags=re.S).group(1)


def readme_snippet(name: str) -> str:
    """The README's loading code for a task type (the Python block after `<!-- snippet: name -->`)."""
    text = (REPO / "README.md").read_text()
    return re.search(rf"<!-- snippet: {name} -->\n```python\n(.*?)```", text, flags=re.S).group(1)


def run_python(code: str, cwd: Path) -> str:
    """Run code in `cwd` (the script itself kept out of it: it may be a repository under test)."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "snippet.py"
        script.write_text(code)
        return run(["python", str(script)], cwd).stdout


def follow_card(model: Path, where: Path, base: Path | None = None) -> str:
    """Copy the model folder elsewhere and run its card's code there, as a user would: `model_dir`
    set to the copy, and `base` to a local copy of the base (a tiny test base is on no Hub)."""
    copy = where / "model"
    shutil.copytree(model, copy)
    meta, _, code = card_parts(copy / "README.md")
    code = code.replace('model_dir = "."', f'model_dir = "{copy}"')
    if base is not None:
        shutil.copytree(base, where / "base")
        code = code.replace(f'base = "{meta["base_model"]}"', f'base = "{where / "base"}"')
    return run_python(code, where)


def test_full_model_card_metadata_and_loading_from_a_copy(tiny_pipeline, tmp_path):
    from ftpipe.models.loading import base_id

    meta, body, _ = card_parts(tiny_pipeline / "models/tuned/README.md")
    record = json.loads((tiny_pipeline / "models/tuned/ftpipe_train.json").read_text())
    identity = json.loads((tiny_pipeline / "models/base/ftpipe_source.json").read_text())
    assert meta["base_model"] == base_id(identity) == base_id(record["base_model"])
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-classification"
    assert meta["metrics"] == ["accuracy", "f1"] and "ftpipe" in meta["tags"]
    assert f"Trainable parameters: {record['trainable_params']:,}" in body and "| train.lr | 0.002 |" in body
    assert "classes: 1 star, 2 stars, 3 stars, 4 stars, 5 stars" in body and "synthetic reviews" in body
    assert f"git checkout {record['run']['git_commit']}" in body and "dvc repro" in body
    assert "no test scores" in body
    out = follow_card(tiny_pipeline / "models/tuned", tmp_path)
    assert "'label': '" in out and "star" in out, out


def test_adapter_card_loads_the_adapter_on_its_base_from_a_copy(dialogsum_pipeline, tmp_path):
    meta, body, code = card_parts(dialogsum_pipeline / "models/tuned/README.md")
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation" and meta["base_model"] == "tiny_llama"
    adapter = json.loads((dialogsum_pipeline / "models/tuned/adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == meta["base_model"]  # the real base, not models/base
    rank = yaml.safe_load((dialogsum_pipeline / "params.yaml").read_text())["method"]["peft"]["r"]
    assert "PeftModel.from_pretrained" in code and f'"r": {rank}' in body and rank == adapter["r"]
    follow_card(dialogsum_pipeline / "models/tuned", tmp_path, base=dialogsum_pipeline / "models/base")  # runs, generates


def test_merged_export_card_loads_without_peft(dialogsum_pipeline, tmp_path):
    meta, body, code = card_parts(dialogsum_pipeline / "models/export/README.md")
    assert meta["library_name"] == "transformers" and "PeftModel" not in code and "merged into the base" in body
    follow_card(dialogsum_pipeline / "models/export", tmp_path)


def test_readme_classification_snippet(tiny_pipeline):
    out = run_python(readme_snippet("classification"), tiny_pipeline)
    assert out.count("'label'") == 5, out  # every class with its probability


def test_readme_summarization_snippet_loads_the_adapter_on_its_base(dialogsum_pipeline):
    run_python(readme_snippet("summarization"), dialogsum_pipeline)
