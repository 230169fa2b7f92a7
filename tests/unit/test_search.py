"""ftpipe-search without DVC runs: the space's parsing and draws, the study's budget and ownership, the pruning
callback, and every bad input as one line before any trial."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import optuna
import pytest
import yaml

from conftest import REPO, assert_one_line_error
from ftpipe.search.space import SearchError, dist, grid, load_search, overrides, parse, suggest

TINY = {"n_trials": 3, "objective": {"metric": "eval_loss"}, "pruner": "median",
        "space": {"train.lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}, "train.epochs": {"low": 2, "high": 6, "step": 2},
                  "method": {"choices": ["full", "lora"], "when": {"lora": {"method.peft.r": {"choices": [4, 8]}}}}}}


def test_the_space_parses_each_kind_and_draws_a_conditional_key_only_with_its_choice():
    cfg = parse(TINY, "tiny.yaml", "tiny")
    lr, epochs, method = cfg.space
    assert (lr.kind, lr.log, epochs.kind, epochs.step, method.kind) == ("float", True, "int", 2, "categorical")
    lora = suggest(optuna.trial.FixedTrial({"train.lr": 0.00123, "train.epochs": 4, "method": "lora", "method.peft.r": 8}), cfg.space)
    assert overrides(lora) == ["train.lr=0.00123", "train.epochs=4", "method=lora", "method.peft.r=8"]
    full = suggest(optuna.trial.FixedTrial({"train.lr": 0.001, "train.epochs": 2, "method": "full"}), cfg.space)
    assert "method.peft.r" not in full and dist("train.warmup", 0.0, "x").kind == "fixed"
    assert cfg.fingerprint() == parse({**TINY, "n_trials": 40}, "other.yaml", "o").fingerprint()  # the budget is not the space
    assert cfg.fingerprint() != parse({**TINY, "space": {"train.lr": {"low": 1.0e-4, "high": 1.0e-3}}}, "t", "t").fingerprint()


def test_the_grid_sampler_takes_enumerable_keys_only():
    space = {"train.lr": {"choices": [1.0e-3, 3.0e-3]}, "train.epochs": {"low": 2, "high": 6, "step": 2}}
    assert grid(parse({"space": space}, "g", "g")) == {"train.lr": [1.0e-3, 3.0e-3], "train.epochs": [2, 4, 6]}
    with pytest.raises(SearchError, match="no conditional sub-spaces"):
        grid(parse({"space": {"method": TINY["space"]["method"]}}, "g", "g"))
    with pytest.raises(SearchError, match="needs a step or choices"):
        grid(parse({"space": {"train.lr": TINY["space"]["train.lr"]}}, "g", "g"))


@pytest.mark.parametrize("spec, message", [
    ({"low": 1.0e-2, "high": 1.0e-4}, "low (0.01) must be below high (0.0001)"),
    ({"low": 0, "high": 1.0e-2, "log": True}, "a log distribution needs low > 0"),
    ({"low": 1, "high": 2, "spread": 3}, "a distribution is {low, high}"),
    ({"choices": []}, "choices: a non-empty list"),
    ({"choices": ["full"], "when": {"lora": {}}}, "when: lora is not one of the choices"),
])
def test_a_bad_distribution_is_one_error_naming_the_key(spec, message):
    with pytest.raises(SearchError, match=message.replace("(", r"\(").replace(")", r"\)").replace("{", r"\{")) as err:
        parse({"space": {"train.lr": spec}}, "conf/search/x.yaml", "x")
    assert str(err.value).startswith("conf/search/x.yaml: space.train.lr: ")


def test_the_pruning_callback_reports_each_score_and_stops_a_pruned_run(tmp_path, monkeypatch):
    from ftpipe.training.pruning import TrialLink, pruning_callbacks

    journal = str(tmp_path / "s.journal")
    study = optuna.create_study(study_name="s", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(journal)), pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    first = study.ask()
    for step, value in ((10, 0.5), (20, 0.4)):
        first.report(value, step)
    study.tell(first, 0.4)
    trial = study.ask()
    monkeypatch.setenv("FTPIPE_TRIAL", TrialLink(journal, "s", trial._trial_id, trial.number, "eval_loss",
                                                 {"name": "median", "n_startup_trials": 1}).to_env()["FTPIPE_TRIAL"])
    [callback] = pruning_callbacks(SimpleNamespace(is_main_process=True, num_processes=1))
    state, control = SimpleNamespace(global_step=10, max_steps=30), SimpleNamespace(should_training_stop=False)
    callback.on_evaluate(None, state, control, metrics={"eval_loss": 0.45})
    assert not control.should_training_stop  # better than the median at step 10
    state.global_step = 20
    callback.on_evaluate(None, state, control, metrics={"eval_loss": 0.9})
    assert control.should_training_stop and callback.record.pruned and callback.record.step == 20
    assert study.trials[1].intermediate_values == {10: 0.45, 20: 0.9}
    monkeypatch.delenv("FTPIPE_TRIAL")
    assert pruning_callbacks(SimpleNamespace(is_main_process=True, num_processes=1)) == []


def test_two_processes_asking_at_once_never_exceed_the_budget(tmp_path):
    from ftpipe.search.study import claim

    study = optuna.create_study(storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j"))))
    claimed = [claim(study, 2) for _ in range(3)]
    assert [t.number for t in claimed[:2]] == [0, 1] and claimed[2] is None


def search(args: list[str], capsys) -> subprocess.CompletedProcess:
    """ftpipe-search in this process (its start-up paid once): exit status and output, as a subprocess gives them."""
    from ftpipe.tools.search import main

    try:
        main(args)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def write(tmp_path, name: str, **changes) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return str(path)


def test_every_bad_input_is_one_line_before_any_trial(tmp_path, monkeypatch, capsys):
    """Each case ends before a trial could start: no `dvc exp run` is printed, no journal is written in the repository."""
    monkeypatch.chdir(REPO)
    journal = str(tmp_path / "study.journal")
    cases = [
        (["--search", write(tmp_path, "key", space={"train.lrr": {"low": 1, "high": 2}})], "space.train.lrr: not a param of the composed config"),
        (["--search", write(tmp_path, "sub", space={"method": {"choices": ["lora"], "when": {"lora": {"method.peft.rank": 8}}}})],
         "space.method.peft.rank: not a param"),
        (["--search", write(tmp_path, "low", space={"train.lr": {"low": 1.0e-2, "high": 1.0e-3, "log": True}})], "must be below high"),
        (["--search", write(tmp_path, "log", space={"train.lr": {"low": -1.0, "high": 1.0e-3, "log": True}})], "needs low > 0"),
        (["--search", write(tmp_path, "obj", objective={"metric": "accuracy", "direction": "maximize"})],
         "objective.metric: accuracy is not a validation metric"),
        (["--search", write(tmp_path, "ok"), "--storage", "postgresql://ftpipe:hunter2@127.0.0.1:1/optuna"], "unreachable"),
        (["--search", write(tmp_path, "ok"), "--storage", f"sqlite:///{tmp_path}/no/such/dir/x.db"], "unreachable"),
        (["--search", "no_such_search"], "no such search config"),
        (["--search", write(tmp_path, "ok"), "--study", "a b"], "--study a b: letters, digits"),
    ]
    for args, expected in cases:
        result = search([*args, "--storage", journal] if "--storage" not in args else args, capsys)
        line = assert_one_line_error(result, expected)
        assert "dvc exp run" not in result.stdout and "hunter2" not in line, line
    # A study of another space under the same name: create it with one space, then ask it with another.
    import ftpipe.search.study as study_mod
    from ftpipe.search.space import load_search as load

    study_mod.open_study(load(write(tmp_path, "ok")), "shared", journal)
    other = write(tmp_path, "other", space={"train.lr": {"low": 1.0e-4, "high": 1.0e-3, "log": True}})
    assert_one_line_error(search(["--search", other, "--study", "shared", "--storage", journal], capsys),
                          "--study shared: already holds a search of another space or objective")
    assert not (REPO / ".ftpipe").exists() or not list((REPO / ".ftpipe").rglob("shared*"))


def test_the_shipped_search_config_parses(monkeypatch):
    monkeypatch.chdir(REPO)
    cfg = load_search("tiny")
    assert cfg.n_trials == 12 and cfg.sampler["name"] == "tpe" and cfg.pruner["name"] == "median"


def test_the_ladders_grid_cell_gives_a_pruned_rate_its_step():
    from ftpipe.search.sweep import Point, grid_note

    points = [Point(1e-3, "ladder-full-lr0.001", "COMPLETE", 1.5, 46), Point(4e-3, "ladder-full-lr0.004", "PRUNED", 1.7, 23)]
    assert grid_note(points) == "0.001:1.5 0.004:pruned@23"


def test_a_trial_whose_search_died_is_marked_failed_once_and_its_params_asked_again(tmp_path):
    import socket

    from ftpipe.search.study import claim, counted, reap_interrupted

    study = optuna.create_study(storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j"))))
    gone = subprocess.Popen(["true"])
    gone.wait()  # a PID that no longer runs
    trial = study.ask()
    trial.suggest_float("train.lr", 1e-4, 1e-2, log=True)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{gone.pid}")
    assert reap_interrupted(study) == [0] and reap_interrupted(study) == []
    assert study.trials[0].state.name == "FAIL" and study.trials[0].user_attrs["interrupted"]
    rerun = claim(study, 1)  # the budget of one is not spent by the interrupted trial: its params come back
    assert rerun.suggest_float("train.lr", 1e-4, 1e-2, log=True) == trial.params["train.lr"]
    assert [t.number for t in counted(study.trials)] == [1] and claim(study, 1) is None


def test_the_grid_gives_each_point_once_to_processes_sharing_a_study_and_ends_by_itself(tmp_path):
    """Two studies opened on one journal stand in for two processes: the second's sampler is made after trials exist."""
    from ftpipe.search.study import claim, open_study

    cfg = parse({"sampler": {"name": "grid", "seed": 5}, "space": {"train.lr": {"choices": [1, 2, 3, 4]}}}, "g.yaml", "g")
    first = open_study(cfg, "g", str(tmp_path / "j"))
    trial = claim(first, 4)
    drawn = [suggest(trial, cfg.space)["train.lr"]]
    first.tell(trial, 1.0)
    second = open_study(cfg, "g", str(tmp_path / "j"))
    for study in (second, first, second):
        trial = claim(study, 4)
        drawn.append(suggest(trial, cfg.space)["train.lr"])
        study.tell(trial, 1.0)  # the last point: Optuna's own GridSampler would call study.stop() here, and raise
    assert sorted(drawn) == [1, 2, 3, 4] and claim(first, 10) is None and claim(second, 10) is None
