"""What is particular to one method, through the real runner on tiny models: freeze's head, AdaLoRA's ranks and
validation loss, prefix and prompt tuning's refusals, early stopping, and the ladder that runs them all.
(Every method on every task type it fits: tests/contract/test_method_contract.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import REPO
from tuning import check, params_for, trained

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny bases and tokenized training sets, built once: {task type: (base dir, data dir)}."""
    import datasets

    from ftpipe.params import compose, validate
    from ftpipe.data.synthetic import reviews
    from ftpipe.models.loading import load_tokenizer
    from ftpipe.models.sources import build_tiny
    from ftpipe.tasks import get_task

    root, out = tmp_path_factory.mktemp("methods"), {}
    cwd = Path.cwd()
    for kind, experiment in (("classification", "test_tiny"), ("summarization", "test_tiny_dialogsum")):
        import os

        os.chdir(REPO)
        try:
            p = validate(compose([f"experiment={experiment}"]), ("task", "model"))
        finally:
            os.chdir(cwd)
        base = root / kind / "base"
        build_tiny(p.model.tiny, base)
        task = get_task(p.task)
        tokenizer = load_tokenizer(base, task)
        if kind == "classification":
            rows = [task.clean(r, type("D", (), {"label_offset": 0})()) for r in reviews(64, seed=3)]
        else:
            rows = [{"id": str(i), "dialogue": f"#Person1#: Hello {i}. #Person2#: Fine, thanks.", "references": [f"They greet {i}."]}
                    for i in range(32)]
        features = task.tokenize(datasets.Dataset.from_list(rows), tokenizer, "train", None, 100)
        features.save_to_disk(str(root / kind / "data" / "train"))
        out[kind] = (base, root / kind / "data")
    return out


# Every method on every task type it fits: tests/contract/test_method_contract.py. Here, what is
# particular to one method.
def test_freeze_trains_only_the_head_and_pooler(tiny, tmp_path, monkeypatch):
    p = params_for("test_tiny", "freeze", monkeypatch)
    before, trainable, after, record = trained(*tiny["classification"], p, tmp_path, monkeypatch)
    assert all(n.startswith(("classifier", "bert.pooler")) for n in trainable), sorted(trainable)
    check(before, trainable, after, record, p)


def test_adalora_moves_its_rank_budget_and_saves_the_ranks_it_kept(tiny, tmp_path, monkeypatch):
    p = params_for("test_tiny", "adalora", monkeypatch)
    check(*trained(*tiny["classification"], p, tmp_path, monkeypatch), p)
    assert json.loads((tmp_path / "tuned" / "adapter_config.json").read_text())["rank_pattern"], "update_and_allocate never ran"


def test_prefix_tuning_without_a_kv_argument_is_one_line_before_training(tiny, tmp_path, monkeypatch):
    """A generic peft config that allows classification: stopped at build, not at the first forward pass."""
    from ftpipe.params import validate
    from ftpipe.core.errors import ConfigError
    from ftpipe.methods import get_method
    from ftpipe.models.loading import load_tokenizer
    from ftpipe.tasks import get_task

    p = params_for("test_tiny", "full", monkeypatch)
    method = validate({"method": {"name": "my_prefix", "type": "peft", "peft": {"peft_type": "PREFIX_TUNING", "num_virtual_tokens": 4}}},
                      ("method",)).method
    task = get_task(p.task)
    base = tiny["classification"][0]
    with pytest.raises(ConfigError, match=r"'my_prefix' does not fit BertForSequenceClassification: prefix tuning needs"):
        get_method(method).build(task, base, load_tokenizer(base, task), p.model)


def test_prompt_tuning_leaves_room_for_its_virtual_tokens_or_says_so_before_training(tiny, monkeypatch):
    """20 virtual tokens before 512 text tokens overflow BERT's 512 positions (found on Yelp, mid-training)."""
    import dataclasses

    from ftpipe.core.errors import ConfigError
    from ftpipe.methods import get_method
    from ftpipe.models.loading import load_tokenizer
    from ftpipe.tasks import get_task

    p = params_for("test_tiny", "prompt_tuning", monkeypatch)
    base = tiny["classification"][0]
    task = get_task(dataclasses.replace(p.task, max_length=512))
    with pytest.raises(ConfigError, match=r"task.max_length: 512 is more than the model's 492 positions \(.*less 20 for the 20 "
                                          r"virtual tokens of 'prompt_tuning'\): use task.max_length <= 492"):
        get_method(p.method).build(task, base, load_tokenizer(base, task), p.model)
    task = get_task(dataclasses.replace(p.task, max_length=492))
    assert get_method(p.method).build(task, base, load_tokenizer(base, task), p.model) is not None


def test_method_that_misfits_the_task_is_a_config_error(monkeypatch):
    from ftpipe.params import compose, validate
    from ftpipe.core.errors import ConfigError

    monkeypatch.chdir(REPO)
    with pytest.raises(ConfigError, match="'prefix_tuning' does not fit a classification task"):
        validate(compose(["experiment=test_tiny", "method=prefix_tuning"]), ("task", "method"))
    # By capability (Task.capabilities against the method's needs), never by a list of task names.
    for method, need in (("features", "example_label"), ("prefix_tuning", "causal_lm"), ("prompt_tuning", "position_free_labels")):
        with pytest.raises(ConfigError, match=f"'{method}' does not fit a qa task: it needs {need}, "):
            validate(compose(["experiment=test_tiny_qa", f"method={method}"]), ("task", "method"))
    validate(compose(["experiment=test_tiny_qa", "method=qlora"]), ("task", "method"))  # needs nothing: fits QA too


def test_early_stopping_keeps_the_best_validated_step(tiny, tmp_path, monkeypatch):
    """A rate high enough that validation loss turns up: training stops early and the best step is the model."""
    from ftpipe.train import train
    from ftpipe.training.run import process_state

    base, data = tiny["classification"]
    p = params_for("test_tiny", "full", monkeypatch, max_steps=-1, epochs=30, lr=0.02, validation_fraction=0.25,
                   early_stopping_patience=2, batch_size=8)
    monkeypatch.chdir(tmp_path)
    record = train(p, process_state(p.train), data, base, tmp_path / "tuned", tmp_path / "live", tmp_path / "checkpoints", tmp_path / "run")
    losses = [float(line.split("\t")[1]) for line in (tmp_path / "live/plots/metrics/eval/loss.tsv").read_text().splitlines()[1:]]
    steps_per_epoch = 6  # 48 of 64 rows train, batch 8
    assert record.stopped_early and len(losses) < 30, losses
    best = losses.index(min(losses))
    assert record.best_step == (best + 1) * steps_per_epoch and record.best_metric["eval_loss"] == pytest.approx(min(losses))
    assert len(losses) == best + 1 + 2  # patience: two evaluations without improvement, then stop



def test_adalora_validation_loss_is_the_task_loss_of_the_model_it_keeps(tiny, tmp_path, monkeypatch):
    """peft adds AdaLoRA's orthogonality penalty to the loss in evaluation too: the validation loss (best
    checkpoint, ladder --tune) fell with the penalty while the model stayed at chance. It is the
    cross-entropy of the tuned model's own logits on the validation split, and the model that was
    trained is the one that reloads (rank pattern applied: same logits)."""
    import datasets
    import torch.nn.functional as F
    from transformers import set_seed

    from ftpipe.methods import load_tuned
    from ftpipe.models.loading import load_tokenizer
    from ftpipe.tasks import get_task
    from ftpipe.train import train
    from ftpipe.training.run import process_state, split_validation
    import ftpipe.methods.peft as peft_method

    base, data = tiny["classification"]
    p = params_for("test_tiny", "adalora", monkeypatch, max_steps=-1, epochs=2, validation_fraction=0.25, precision="fp32")
    monkeypatch.chdir(tmp_path)
    kept = {}
    save = peft_method.Method.save
    monkeypatch.setattr(peft_method.Method, "save", lambda self, model, *args: kept.setdefault("model", model) and save(self, model, *args))
    record = train(p, process_state(p.train), data, base, tmp_path / "tuned", tmp_path / "live", tmp_path / "checkpoints", tmp_path / "run")
    assert json.loads((tmp_path / "tuned" / "adapter_config.json").read_text())["rank_pattern"], "no ranks were pruned"
    task = get_task(p.task)
    tokenizer = load_tokenizer(base, task)
    _, validation = split_validation(datasets.load_from_disk(str(data / "train")), 0.25, p.train.seed, task)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids", "labels") if k in validation.column_names]
    batch = task.collator(tokenizer)([{k: row[k] for k in keys} for row in validation])
    labels = batch.pop("labels")
    set_seed(p.train.seed)
    reloaded = load_tuned(task, tmp_path / "tuned", base, tokenizer).eval()
    with torch.no_grad():
        logits, trained_logits = reloaded(**batch).logits, kept["model"].eval()(**batch).logits
    assert torch.allclose(logits, trained_logits, atol=1e-5), (logits - trained_logits).abs().max()
    assert record.best_metric["eval_loss"] == pytest.approx(F.cross_entropy(logits, labels).item(), abs=1e-4)


def test_ladder_gives_each_method_the_shared_overrides_then_its_own(monkeypatch):
    from ftpipe.tools import ladder

    monkeypatch.chdir(REPO)
    calls = []
    monkeypatch.setattr(ladder, "run_one", lambda method, overrides: calls.append((method, overrides)) or f"ladder-{method}")
    monkeypatch.setattr(ladder, "row", lambda method, name, which="tuned": {"method": method})
    monkeypatch.setattr(ladder, "write_report", lambda rows: None)
    monkeypatch.setattr(ladder, "exp_ref", lambda name: f"refs/exps/{name}")
    monkeypatch.setattr(ladder, "workspace_predictions", lambda which="tuned": {})  # a clean clone has no predictions/
    monkeypatch.setattr(ladder, "versus_best", lambda *args: None)
    monkeypatch.setattr(ladder, "seed_intervals", lambda *args: None)
    ladder.main(["--methods", "distill,full,lora", "-S", "data=yelp_local", "--for", "lora", "train.lr=5e-4"])
    assert calls == [("full", ["data=yelp_local"]), ("lora", ["data=yelp_local", "train.lr=5e-4"]),
                     ("distill", ["data=yelp_local", "method.teacher.revision=refs/exps/ladder-full"])]
    with pytest.raises(SystemExit, match="no conf/method/lorra.yaml"):
        ladder.main(["--methods", "full", "--for", "lorra", "train.lr=1"])


def test_ladder_tune_sweeps_each_methods_rate_and_keeps_the_best_validated_run(monkeypatch):
    """--tune: one experiment per rate of the grid around each method's default, the best validation score chosen,
    the chosen run's row and predictions kept; with --tune-epochs the chosen rate is trained again at full length."""
    import math

    from ftpipe.tools import ladder

    monkeypatch.chdir(REPO)
    calls, rows, seen = [], [], {}
    best_lr = {"full": 1.5e-5, "lora": 1.5e-3, "distill": 1e-4}  # where each fake method's validation loss is lowest

    def run_one(method, overrides, name=None):
        name = name or f"ladder-{method}"
        calls.append((method, overrides, name))
        lr = float(next(o for o in overrides if o.startswith("train.lr="))[len("train.lr="):]) if method != "features" else None
        seen.update(method=method, name=name, lr=lr)
        return name

    def validation():  # lowest at the method's best rate; the evaluation set is never read
        return ("eval_loss", 1 + abs(math.log10(seen["lr"] / best_lr[seen["method"]]))) if seen["lr"] else None

    def rate_sweep(method, settings, lrs, metric, **options):  # the search (ftpipe.search.sweep), each point run_one's
        from ftpipe.search.sweep import Point

        assert settings[0] == f"method={method}"  # the search's runs name the method, as run_one's do
        budget = [s for s in settings if s.startswith("train.epochs=")]
        for lr in lrs:
            name = run_one(method, [*[s for s in settings[1:] if s not in budget], f"train.lr={lr:g}", *budget], f"ladder-{method}-lr{lr:g}")
            yield Point(lr, name, "COMPLETE", validation()[1], None)

    import ftpipe.search.sweep as sweep

    monkeypatch.setattr(ladder, "run_one", run_one)
    monkeypatch.setattr(sweep, "rate_sweep", rate_sweep)
    monkeypatch.setattr(ladder, "row", lambda method, name, which="tuned": {"method": method, "experiment": name, "lr": seen["lr"],
                                                                         "validation_metric": None, "validation_value": None})
    monkeypatch.setattr(ladder, "workspace_predictions", lambda which="tuned": {"run": seen["name"]})
    monkeypatch.setattr(ladder, "exp_ref", lambda name: f"refs/exps/{name}")
    monkeypatch.setattr(ladder, "versus_best", lambda rows_, predictions, *args: seen.update(predictions=dict(predictions)))
    monkeypatch.setattr(ladder, "seed_intervals", lambda *args: None)  # the decisions: tests/unit/test_decisions.py
    monkeypatch.setattr(ladder, "write_report", lambda rows_: rows.append(list(rows_)))
    ladder.main(["--methods", "distill,features,full,lora", "--tune", "--grid", "0.3,1,3", "-S", "experiment=yelp_bert"])
    # Yelp's full rate is 5e-5; every other method's is its own default (conf/method/*.yaml), without --for.
    assert [(m, n) for m, _, n in calls] == [
        ("features", "ladder-features"),
        ("full", "ladder-full-lr1.5e-05"), ("full", "ladder-full-lr5e-05"), ("full", "ladder-full-lr0.00015"),
        ("lora", "ladder-lora-lr0.00015"), ("lora", "ladder-lora-lr0.0005"), ("lora", "ladder-lora-lr0.0015"),
        ("distill", "ladder-distill-lr3e-05"), ("distill", "ladder-distill-lr0.0001"), ("distill", "ladder-distill-lr0.0003")]
    assert calls[1][1] == ["experiment=yelp_bert", "train.lr=1.5e-05"]
    # distill is taught by the full run that was chosen, not by a ladder-full that was never run
    assert all("method.teacher.revision=refs/exps/ladder-full-lr1.5e-05" in o for m, o, _ in calls if m == "distill")
    final = {r["method"]: r for r in rows[-1]}
    assert final["base model"]["experiment"] == "ladder-features"
    assert (final["full"]["experiment"], final["full"]["lr"], final["full"]["validation_value"]) == ("ladder-full-lr1.5e-05", 1.5e-5, 1.0)
    assert (final["lora"]["experiment"], final["lora"]["lr"]) == ("ladder-lora-lr0.0015", 1.5e-3)
    assert final["lora"]["validation_metric"] == "eval_loss" and final["lora"]["lr_grid"] == "0.00015:2 0.0005:1.47712 0.0015:1"
    assert final["distill"]["experiment"] == "ladder-distill-lr0.0001" and final["features"].get("lr_grid") is None
    assert seen["predictions"]["lora"] == [{"run": "ladder-lora-lr0.0015"}]  # the chosen run's predictions, not the last run's

    # A shorter sweep: each point runs train.epochs=1, then the chosen rate trains at the full length as ladder-<method>.
    calls.clear()
    ladder.main(["--methods", "lora", "--tune", "--grid", "1,3", "--tune-epochs", "1", "-S", "experiment=yelp_bert",
                 "--for", "lora", "train.lr=1e-4"])
    assert calls == [("lora", ["experiment=yelp_bert", "train.lr=0.0001", "train.epochs=1"], "ladder-lora-lr0.0001"),
                     ("lora", ["experiment=yelp_bert", "train.lr=0.0003", "train.epochs=1"], "ladder-lora-lr0.0003"),
                     ("lora", ["experiment=yelp_bert", "train.lr=0.0003"], "ladder-lora")]
    lora = rows[-1][-1]
    assert (lora["experiment"], lora["lr"], lora["lr_grid"]) == ("ladder-lora", 3e-4, "0.0001:2.17609 0.0003:1.69897")
    assert seen["predictions"]["lora"] == [{"run": "ladder-lora"}]

    # --seeds 3: the chosen rate twice more, at train.seed + 1 and + 2; the row is their mean with the seeds' SD.
    calls.clear()
    monkeypatch.setattr(ladder, "row", lambda method, name, which="tuned": {"method": method, "experiment": name, "lr": seen["lr"],
                                                                         "value": 0.5 + 0.1 * name.endswith("-s43"),
                                                                         "validation_metric": None, "validation_value": None})
    ladder.main(["--methods", "lora", "--tune", "--grid", "1", "--seeds", "3", "-S", "experiment=yelp_bert"])
    assert [(n, [o for o in overrides if o.startswith(("train.seed", "train.lr"))]) for _, overrides, n in calls] == [
        ("ladder-lora-lr0.0005", ["train.lr=0.0005"]), ("ladder-lora-lr0.0005-s43", ["train.lr=0.0005", "train.seed=43"]),
        ("ladder-lora-lr0.0005-s44", ["train.lr=0.0005", "train.seed=44"])]
    lora = rows[-1][-1]
    assert (lora["value"], lora["seed_sd"], lora["seeds"]) == (0.5333, 0.0577, 3) and len(seen["predictions"]["lora"]) == 3
    with pytest.raises(SystemExit, match="--seeds 0: at least 1"):
        ladder.main(["--methods", "lora", "--seeds", "0"])
    with pytest.raises(SystemExit, match="--grid 0,1"):
        ladder.main(["--methods", "lora", "--tune", "--grid", "0,1"])
    with pytest.raises(SystemExit, match="train.validation_fraction=0"):
        ladder.main(["--methods", "lora", "--tune", "-S", "train.validation_fraction=0"])


def test_lora_stores_the_frozen_base_in_bf16_when_training_in_bf16_and_trains_in_fp32(tiny, monkeypatch):
    """train.precision bf16: the frozen base in bf16 (no cast per forward pass), what trains in fp32; the
    fp32 ablation (method.frozen_base=fp32) and fp32 training keep every weight in fp32."""
    import dataclasses
    from types import SimpleNamespace

    from ftpipe.methods import get_method
    from ftpipe.models.loading import load_tokenizer
    from ftpipe.tasks import get_task

    p = params_for("test_tiny", "lora", monkeypatch)
    base, task = tiny["classification"][0], get_task(p.task)
    tokenizer = load_tokenizer(base, task)

    def dtypes(method_cfg, bf16):
        model = get_method(method_cfg).build(task, base, tokenizer, p.model, SimpleNamespace(args=SimpleNamespace(bf16=bf16)))
        return model, {(param.requires_grad, param.dtype) for param in model.parameters()}

    model, found = dtypes(p.method, True)
    assert found == {(False, torch.bfloat16), (True, torch.float32)}
    batch = tokenizer(["a fine place", "awful"], padding=True, return_tensors="pt")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(**batch, labels=torch.tensor([0, 1])).loss.backward()
    assert all(param.grad.dtype == torch.float32 for param in model.parameters() if param.requires_grad)
    assert dtypes(dataclasses.replace(p.method, frozen_base="fp32"), True)[1] == {(False, torch.float32), (True, torch.float32)}
    assert dtypes(p.method, False)[1] == {(False, torch.float32), (True, torch.float32)}
