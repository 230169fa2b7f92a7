"""Smoke test of the benchmark suite's wiring (never its timings): tiny models, a handful of rows, inline."""

import json

import pytest

from conftest import REPO, run


# The suite benchmarks real datasets, which live beside the project, never in it.
SHARED = REPO.parent / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not all((SHARED / d).is_dir() for d in ("yelp_review_full", "squad", "dialogsum")),
                    reason=f"benchmark data not found in {SHARED}")
def test_suite_tiny_runs_every_arm(tmp_path):
    out = tmp_path / "tiny.json"
    run(["python", "-m", "benchmarks.run", "--quick", "--tiny", "--only", "arms", "qa", "tagging", "summarization", "padding", "packing", "tokenization",
         "scaling", "--out", str(out)], cwd=REPO)
    results = json.loads(out.read_text())

    recipe, ftpipe = results["arms"]["recipe"], results["arms"]["ftpipe"]
    assert recipe["tokens_per_train_row"] == 512 and ftpipe["tokens_per_train_row"] < 512
    assert recipe["accuracy_base"] == ftpipe["accuracy_base"]  # same model, same seeded head: same predictions
    for arm in (recipe, ftpipe):  # each phase's own peak, never above the process's
        phases = [arm[f"{phase}_peak_rss_mb"] for phase in ("tokenize", "eval_base", "train", "eval_tuned")]
        assert all(0 < peak <= arm["peak_rss_mb"] for peak in phases)
    assert results["summary"]["tokenization"] is not None

    qa = results["qa"]
    assert qa["recipe"]["tokens_per_train_feature"] == 512 and qa["ftpipe"]["tokens_per_train_feature"] < 512
    assert qa["recipe"]["eval_questions"] == qa["ftpipe"]["eval_questions"] == 8  # the same questions in both
    assert all(0 <= qa[arm]["f1_tuned"] <= 100 for arm in qa)

    summ = results["summarization"]
    assert set(summ) == {"recipe", "ftpipe_lora", "ftpipe_lora_fp32_base", "ftpipe_lora, token batches", "ftpipe_qlora"}
    assert summ["ftpipe_lora"]["frozen_base"] == "compute" and summ["ftpipe_lora_fp32_base"]["frozen_base"] == "fp32"
    assert len({summ[arm]["eval_dialogues"] for arm in summ}) == 1
    assert all(summ[arm]["generated_tokens"] > 0 and 0 <= summ[arm]["rougeL"] <= 1 for arm in summ)
    assert set(results["summary"]) >= {"qa", "summarization"}

    assert set(results["peaks"]) == {"tiny_bert", "summarization-tiny_llama"}  # measured once per model, in this run (tagging: tiny_bert too)
    for section in ("arms", "qa", "tagging", "summarization"):
        for name, arm in results[section].items():
            assert arm["train_mfu"] > 0 and arm["train_padding_waste"] >= 0, (section, name)
    assert all(summ[arm]["eval_bandwidth_utilization"] > 0 for arm in summ)
    bare = results["summary"]["vs_bare"]  # every ftpipe arm against the bare loop on its own batches
    rows = {"arms/ftpipe", "qa/ftpipe", "tagging/ftpipe", "summarization/ftpipe_lora", "summarization/ftpipe_lora_fp32_base",
            "summarization/ftpipe_qlora"}
    assert set(bare) == rows | {"arms/ftpipe, token batches", "qa/ftpipe, token batches", "tagging/ftpipe, token batches",
                                "summarization/ftpipe_lora, token batches"}
    tokens = results["arms"]["ftpipe, token batches"]  # token-budget batches: less padding than row batches, both phases
    assert tokens["train_config"]["batch_tokens"] and tokens["train_padding_waste"] < results["arms"]["ftpipe"]["train_padding_waste"]
    assert tokens["eval_tuned_padding_waste"] < results["arms"]["ftpipe"]["eval_tuned_padding_waste"]
    for key in bare:
        section, name = key.split("/")
        arm = results[section][name]
        assert arm["bare_train_computed_tokens"] == arm["train_steady_computed_tokens"] > 0 and bare[key]["train_vs_bare"] > 0
        assert len(arm["bare_train_step_s"]) == len(arm["train_steady_step_s"]) == arm["train_steady_steps"]  # paired, step for step
        assert bare[key]["train_vs_bare_low"] - 0.01 <= bare[key]["train_vs_bare"] <= bare[key]["train_vs_bare_high"] + 0.01

    packing = results["packing"]  # the same batches of the same rows: the same real tokens, none wasted when packed
    assert len({packing[arm]["real_tokens"] for arm in packing}) == 1
    assert packing["packed"]["padding_waste"] == 0 < packing["padded"]["padding_waste"]
    assert packing["packed"]["train_loss"] == pytest.approx(packing["padded"]["train_loss"], rel=1e-2)
    assert set(results["summary"]["packing"]) >= {"real_tokens_per_s", "real_tokens_per_cpu_s"}

    padding = results["padding"]["workloads"]  # each task's real lengths, cut at the arm's size and at users' sizes
    assert set(padding) == {"arms", "qa", "tagging", "summarization"}
    assert all([p["rows"] for p in w["points"]][1:] == [1_000, 10_000, 100_000, 500_000] for w in padding.values())
    assert padding["summarization"]["points"][0]["eval_sorted"] is None  # it generates from prompts, not these rows

    points = results["scaling"]["points"]
    assert {p["task"] for p in points} == {"classification", "qa", "summarization"}
    by_rows = json.loads((tmp_path / "tiny-scaling-rows.json").read_text())  # what benchmarks/dvc.yaml plots
    assert [row["rows"] for row in by_rows] == [40, 80]
    assert all(row["qa_train_s"] > 0 and row["summarization_train_peak_rss_mb"] > 0 for row in by_rows)


def test_utilization_counts_real_tokens_and_padding():
    import torch
    from transformers import DataCollatorWithPadding

    from benchmarks.utilization import TokenCounter, _rate, padded_batches, utilization

    steady, noisy = {}, {}
    _rate(steady, "peak", 10.0, [1.0, 1.05, 1.02])
    _rate(noisy, "peak", 10.0, [1.0, 1.25, 1.1])  # a neighbour took the CPU during one timing
    assert steady["peak"] == 10.0 and steady["peak_spread"]["min"] == pytest.approx(10 / 1.05) and "noisy" not in steady
    assert noisy["noisy"] == ["peak"] and noisy["peak_spread"]["relative"] == 0.25

    from benchmarks.bare import steady  # 6 steps of 2 batches each: 2 warm-up steps left out, 4 timed
    stats = [(10, 8, 32)] * 12
    timed = steady("s", stats, [1.0, 2.0, 2.5, 3.0, 3.5, 4.0], per_step=2)
    assert timed == {"s_s": 2.0, "s_steps": 4, "s_step_s": [0.5] * 4, "s_computed_tokens": 80, "s_real_tokens": 64, "s_squared_lengths": 256}

    class Tok:  # the padding side of a tokenizer, all DataCollatorWithPadding asks of it
        padding_side, pad_token_id, model_input_names = "right", 0, ["input_ids", "attention_mask"]

        def pad(self, features, return_tensors="pt", **kwargs):
            longest = max(len(f["input_ids"]) for f in features)
            ids = [f["input_ids"] + [0] * (longest - len(f["input_ids"])) for f in features]
            mask = [[1] * len(f["input_ids"]) + [0] * (longest - len(f["input_ids"])) for f in features]
            return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}

    counter = TokenCounter(DataCollatorWithPadding(Tok()))
    counter([{"input_ids": [5, 6, 7]}, {"input_ids": [5, 6, 7, 8, 9]}])
    assert counter.stats("train") == {"train_computed_tokens": 10, "train_real_tokens": 8, "train_squared_lengths": 9 + 25}
    flat = TokenCounter(lambda features: {"input_ids": torch.ones(1, 5, dtype=torch.long), "position_ids": torch.tensor([[0, 1, 2, 0, 1]])})
    flat([{}])
    assert flat.stats("t") == {"t_computed_tokens": 5, "t_real_tokens": 5, "t_squared_lengths": 9 + 4}  # packed: no padding

    assert padded_batches([5, 1, 4, 2, 3], 2, sort=True)["computed"] == 2 * 2 + 4 * 2 + 5  # as inference sorts: [1, 2], [3, 4], [5]
    assert padded_batches([5, 1, 4, 2, 3], 2, sort=False)["computed"] == 5 * 2 + 4 * 2 + 3  # as given: [5, 1], [4, 2], [3]

    arm = {"train_s": 2.0, "train_real_tokens": 100, "train_computed_tokens": 150, "train_squared_lengths": 1000, "precision": "bf16"}
    peaks = {"peak_fp32_flops": 1e9, "peak_bf16_flops": 4e9}
    n, layers, hidden = 10**7, 2, 8
    full = utilization(arm, n, layers, hidden, peaks)
    flops = 6 * n * 100 + 12 * layers * hidden * 1000
    assert full["train_mfu"] == pytest.approx(flops / 2.0 / 4e9, rel=1e-2) and full["train_padding_waste"] == 0.5
    frozen = utilization(arm | {"trainable_params": 10**5}, n, layers, hidden, peaks)  # LoRA-like: no weight gradients for the base
    assert frozen["train_useful_gflops"] < full["train_useful_gflops"]
    assert frozen["train_useful_gflops"] == pytest.approx(((4 * n + 2 * 10**5) * 100 + 12 * layers * hidden * 1000) / 2.0 / 1e9, rel=1e-2)


def test_default_row_batches_pad_little_once_rows_are_many_and_token_batches_at_any_size():
    import numpy as np

    from benchmarks.padding import at_sizes

    lengths = np.clip(np.rint(np.random.default_rng(0).lognormal(5, 0.6, 20_000)), 8, 512).astype(np.int64)
    points = {p["rows"]: p for p in at_sizes(lengths, 96, 8, 16, True, 2048)}
    assert points[96]["row_batches"] > 0.15  # 4 megabatches of 24 rows: little grouping
    assert points[10_000]["row_batches"] < 0.05 and points[500_000]["row_batches"] < 0.05 and points[500_000]["drawn"]
    assert all(p["token_batches"] < 0.05 and p["eval_sorted"] <= points[96]["eval_sorted"] for p in points.values())


def test_the_bare_ratio_carries_an_interval_over_paired_steps_and_a_spike_moves_the_median_little():
    from benchmarks.utilization import paired_ratio

    bare = [1.0, 1.2, 0.8, 1.1, 0.9, 1.0, 1.3, 0.7]
    same = paired_ratio([t / 0.9 for t in bare], bare)  # ftpipe 1/0.9 slower on every batch
    assert same["low"] == same["high"] == same["median_step"] == 0.9
    spiked = paired_ratio([t / 0.9 for t in bare[:-1]] + [bare[-1] / 0.9 + 5.0], bare)  # one step hit by a neighbour
    assert spiked["median_step"] == 0.9 and spiked["low"] < 0.6 < 0.9 <= spiked["high"]
    assert paired_ratio([1.0, 1.0], [1.0]) == {} and paired_ratio(None, [1.0]) == {}


def test_repeats_report_each_bare_ratio_and_their_median():
    from benchmarks.run import across_repeats

    arm = {"train_vs_bare": 0.8, "eval_vs_bare": 1.0, "repeats": [{"train_vs_bare": 1.0, "eval_vs_bare": None}, {"train_vs_bare": 0.9}]}
    assert across_repeats(arm) == {"train_vs_bare_repeats": [0.8, 1.0, 0.9], "train_vs_bare_median": 0.9,
                                   "eval_vs_bare_repeats": [1.0], "eval_vs_bare_median": 1.0}
    assert across_repeats({"train_vs_bare": 0.8}) == {}


def test_kept_batches_are_copies_outside_the_heap_that_outlive_the_originals():
    import torch

    from benchmarks.utilization import off_heap

    ids, flags = torch.arange(12).view(3, 4), torch.tensor([True, False])
    kept = [off_heap(ids), off_heap(flags), off_heap(torch.zeros(0))]
    assert kept[0].data_ptr() != ids.data_ptr()
    del ids, flags
    assert kept[0].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]] and kept[1].tolist() == [True, False]
    assert kept[2].shape == (0,)
