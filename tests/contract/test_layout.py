"""The layout's rules, checked on the source: short modules and functions, the launch's process state made in
one place, and benchmarks that train ftpipe's arms through ftpipe's own `fit` (only a recipe, the tutorial as
written, builds its Trainer)."""

from __future__ import annotations

import ast

from conftest import REPO

MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 50
PROCESS_STATE = "src/ftpipe/training/run.py"  # process_state: the one PartialState, handed to everyone else


def sources(*folders: str) -> dict[str, str]:
    return {str(path.relative_to(REPO)): path.read_text() for folder in folders for path in sorted((REPO / folder).rglob("*.py"))}


def trainer_builds(source: str) -> list[tuple[str, int]]:
    """(top-level function, line) of every call of a name ending in `Trainer`: a Trainer built there."""
    found = []
    for top in ast.parse(source).body:
        for node in ast.walk(top):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                if name.endswith("Trainer"):
                    found.append((getattr(top, "name", "<module>"), node.lineno))
    return found


def test_only_the_recipes_build_a_trainer_in_the_benchmarks():
    built = {path: [hit for hit in trainer_builds(text) if not hit[0].startswith("recipe")]
             for path, text in sources("benchmarks").items()}
    assert not {path: hits for path, hits in built.items() if hits}, "train ftpipe's arms through benchmarks.common.ftpipe_fit"


def test_the_trainer_scan_sees_a_trainer_built_outside_a_recipe():
    planted = "def recipe(spec):\n    Trainer(model=m)\n\ndef ftpipe_arm(spec):\n    t = ResumableTrainer(model=m)\n"
    assert trainer_builds(planted) == [("recipe", 2), ("ftpipe_arm", 5)]


def test_the_process_state_is_made_once_and_passed_on():
    for path, text in sources("src").items():
        calls = [node for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Call)
                 and getattr(node.func, "id", getattr(node.func, "attr", "")) == "PartialState"]
        assert not calls or path == PROCESS_STATE, f"{path}: take the state process_state made as a parameter"
        assert "WORLD_SIZE" not in text, f"{path} reads WORLD_SIZE: the state knows the world size"


def test_modules_and_functions_stay_short():
    long_modules = {path: n for path, text in sources("src").items() if (n := len(text.splitlines())) > MAX_MODULE_LINES}
    long_functions = {}
    for path, text in sources("src").items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                long_functions[f"{path}:{node.lineno} {node.name}"] = node.end_lineno - node.lineno + 1
    assert not long_modules and not long_functions, (long_modules, long_functions)
