"""For every task type: each stage's code deps in dvc.yaml cover every ftpipe module the stage imports,
so a stage reruns when code it runs changed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SRC = REPO / "src"
TASK_TYPES = sorted(p.name for p in (SRC / "ftpipe" / "tasks").iterdir() if (p / "__init__.py").exists())
# Plug-in packages that config.py imports only for the params sections a stage loads.
SECTION_PLUGINS = {"task": "ftpipe.tasks", "method": "ftpipe.methods"}


def module_file(name: str) -> Path | None:
    path = SRC.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Every ftpipe module `path` imports, at the top or inside a function, with the packages above it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from ftpipe import metrics`
    out = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != "ftpipe":
            continue
        out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1) if module_file(".".join(parts[:i]))}
    return out


def closure(script: Path, task_type: str) -> set[Path]:
    """The files a stage script runs: its ftpipe imports, transitively, with dynamic plug-ins resolved."""
    loaded = set(re.findall(r'"(\w+)"', " ".join(re.findall(r"load_params\(([^)]*)\)", script.read_text()))))
    todo, seen = list(imported_modules(script)), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found = imported_modules(module_file(name))
        if name == "ftpipe.params":  # plug-in schemas, only for the sections this stage loads
            found = {m for m in found if not any(m.startswith(p) and s not in loaded for s, p in SECTION_PLUGINS.items())}
        if name == "ftpipe.tasks":  # importlib: the plug-in of the task type in use
            found.add(f"ftpipe.tasks.{task_type}")
        if name == "ftpipe.methods":  # importlib: every method (dvc.yaml lists the package)
            found |= {f"ftpipe.methods.{p.stem}" for p in (SRC / "ftpipe" / "methods").glob("*.py")}
        # load_metric(Path(__file__).with_name("rouge.py")): evaluate runs a module beside this one
        package = name if module_file(name).name == "__init__.py" else name.rpartition(".")[0]
        found |= {module for stem in re.findall(r'with_name\("(\w+)\.py"\)', module_file(name).read_text())
                  if module_file(module := f"{package}.{stem}")}
        todo.extend(found)
    return {module_file(name) for name in seen}


def declared_stages(task_type: str):
    """(stage name, script, declared code deps) per stage of dvc.yaml, templated for one task type."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in spec.items():
        body = stage.get("do", stage)
        deps = [d.replace("${task.type}", task_type) for d in body["deps"]]
        script = REPO / next(d for d in deps if d.startswith("stages/"))
        yield name, script, {(REPO / d).resolve() for d in deps if d.startswith(("src/", "stages/"))}


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_every_stage_depends_on_the_code_it_imports(task_type):
    misses = {}
    for name, script, deps in declared_stages(task_type):
        used = closure(script, task_type) | {script}
        missing = sorted(str(f.relative_to(REPO)) for f in used if not any(f == d or d in f.parents for d in deps))
        if missing:
            misses[name] = missing
    assert not misses, f"dvc.yaml code deps miss imported modules: {misses}"


def test_dep_checker_sees_a_miss():
    """The check above can fail: evaluate imports qa's post-processing, which preprocess's own imports do not reach."""
    used = {str(f.relative_to(REPO)) for f in closure(REPO / "stages/evaluate_model.py", "qa")}
    assert "src/ftpipe/tasks/qa/postprocess.py" in used and "src/ftpipe/tasks/qa/squad.py" in used
    assert "src/ftpipe/methods/peft.py" in used and "src/ftpipe/data/download.py" not in used
    assert "src/ftpipe/methods/base.py" not in {str(f.relative_to(REPO)) for f in closure(REPO / "stages/download_data.py", "qa")}
