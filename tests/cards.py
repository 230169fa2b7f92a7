"""Model cards and documented snippets, run as a user would run them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from conftest import REPO, run


def card_parts(card: Path) -> tuple[dict, str, str]:
    """(YAML metadata, text, the Python block) of a model card."""
    text = card.read_text()
    _, meta, body = text.split("---\n", 2)
    return yaml.safe_load(meta), body, re.search(r"```python\n(.*?)```", body, flags=re.S).group(1)


def docs_snippet(name: str) -> str:
    """The documented loading code for a task type (docs/using-results.md: the Python block after
    `<!-- snippet: name -->`)."""
    text = (REPO / "docs" / "using-results.md").read_text()
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
