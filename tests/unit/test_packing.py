"""train.packing: a flattened batch trains exactly as the same examples padded, and where it cannot, one line."""

from __future__ import annotations


import pytest
import torch
import yaml

from conftest import REPO
from ftpipe.core.errors import ConfigError
from ftpipe.packing import PackedCollator, check_model, train_collator
from ftpipe.params import validate
from ftpipe.tasks import get_task
from ftpipe.tasks.summarization import IGNORE, PadCollator

TINY_LLAMA = {k: v for k, v in yaml.safe_load((REPO / "conf/model/tiny_llama.yaml").read_text())["tiny"].items() if k != "model_type"}
# Dialogues of very different lengths, as DialogSum's are: most of a padded batch is padding.
DIALOGUES = [("#Person1#: Hi.\n#Person2#: Hello.", "They greet."),
             ("\n".join(f"#Person{1 + i % 2}#: turn {i} of a long talk about the weather and the trains." for i in range(12)),
              "A long talk about the weather."),
             ("#Person1#: Are you coming to the party tonight?\n#Person2#: Yes, I will bring some cake.", "#Person2# brings cake."),
             ("#Person1#: What time is it?\n#Person2#: Five.", "It is five.")]


@pytest.fixture(scope="module")
def tokenizer():
    from ftpipe.models.sources import tiny_tokenizer

    return tiny_tokenizer("llama", TINY_LLAMA["vocab_size"])


@pytest.fixture(scope="module")
def rows(tokenizer):
    import datasets

    task = get_task(validate({"task": {"name": "dialogsum", "type": "summarization", "max_length": 192}}, ("task",)).task)
    records = [{"id": str(i), "dialogue": d, "references": [s]} for i, (d, s) in enumerate(DIALOGUES)]
    features = task.tokenize(datasets.Dataset.from_list(records), tokenizer, "train", None, 10)
    return [features[i] for i in range(len(features))]


def tiny_llama(tokenizer, attention="sdpa"):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    # use_cache stays the config's default (True): PackedCollator has to turn it off itself.
    config = LlamaConfig(**{**TINY_LLAMA, "vocab_size": len(tokenizer)}, pad_token_id=tokenizer.pad_token_id,
                         attn_implementation=attention)
    return LlamaForCausalLM(config)


def loss_and_grads(model, batch, **kwargs):
    model.zero_grad()
    loss = model(**batch, **kwargs).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}


# Packed and padded batches sum the same products in another order: float32 rounding, far below these.
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-6


def assert_same(a, b):
    (loss_a, grads_a), (loss_b, grads_b) = a, b
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=GRAD_RTOL, atol=GRAD_ATOL, msg=name)


def test_rows_are_what_packing_assumes(rows, tokenizer):
    lengths = [len(r["input_ids"]) for r in rows]
    assert max(lengths) > 3 * min(lengths)  # padding would be most of the batch
    batch = PackedCollator()(rows)
    assert batch["input_ids"].shape == (1, sum(lengths)) and "attention_mask" not in batch and batch["use_cache"] is False
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    assert [batch["position_ids"][0, s].item() for s in starts] == [0] * len(rows)  # positions restart per example
    # No example's first token is learned from the one before it; the summaries are learned as padded.
    assert all(batch["labels"][0, s].item() == IGNORE for s in starts)
    learned = sum(sum(label != IGNORE for label in r["labels"]) for r in rows)
    assert int((batch["labels"] != IGNORE).sum()) == learned


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_batch_gives_the_padded_loss_and_gradients(rows, tokenizer, attention):
    model = tiny_llama(tokenizer, attention)
    padded, packed = PadCollator(tokenizer.pad_token_id, "right")(rows), PackedCollator()(rows)
    assert_same(loss_and_grads(model, packed), loss_and_grads(model, padded))
    # As the Trainer calls it: the loss summed over the batch's learned tokens, divided by their count.
    items = int((padded["labels"][..., 1:] != IGNORE).sum())
    assert int((packed["labels"][..., 1:] != IGNORE).sum()) == items
    assert_same(loss_and_grads(model, packed, num_items_in_batch=items), loss_and_grads(model, padded, num_items_in_batch=items))


def test_the_comparison_sees_attention_cross_examples(rows, tokenizer):
    """The equality above can fail: the same flat row with attention crossing examples gives another loss."""
    model = tiny_llama(tokenizer)
    padded = loss_and_grads(model, PadCollator(tokenizer.pad_token_id, "right")(rows))
    packed = PackedCollator()(rows)
    no_restart = {**packed, "position_ids": torch.arange(packed["input_ids"].shape[1])[None]}  # one long sequence
    with_cache = {k: v for k, v in packed.items() if k != "use_cache"}  # the model's DynamicCache hides the packing
    for crossing in (no_restart, with_cache):
        assert abs(loss_and_grads(model, crossing)[0] - padded[0]) > 1e-4


def test_trainer_steps_match_with_gradient_accumulation(rows, tokenizer, tmp_path):
    """Two optimizer steps of two accumulated batches each, through ftpipe's Trainer: same losses, and each
    weight moved by the same update.

    SGD, not AdamW: Adam divides each gradient by its running RMS, so a rounding-level difference in a
    near-zero gradient (packed and padded batches sum in another order) becomes a step of about lr whose
    sign depends on the CPU's kernels. SGD moves a weight by lr x its gradient, so two runs whose gradients
    agree within assert_same's tolerance end with updates that agree within lr x that tolerance per step,
    plus the rounding of the weight itself (float32's eps x its size) at each step."""
    import datasets

    from ftpipe.core.config import TrainConfig
    from ftpipe.training.arguments import training_arguments
    from ftpipe.trainer import ResumableTrainer

    data = datasets.Dataset.from_list(rows * 2)
    lr, steps = 1e-2, 2
    cfg = TrainConfig(lr=lr, max_steps=steps, batch_size=2, grad_accum=2, logging_steps=1, report_to=[], precision="fp32",
                      optim="sgd", max_grad_norm=None)
    task = get_task(validate({"task": {"type": "summarization"}}, ("task",)).task)
    initial = {name: weight.clone() for name, weight in tiny_llama(tokenizer).state_dict().items()}
    trained = {}
    for packing in (False, True):
        model = tiny_llama(tokenizer)
        trainer = ResumableTrainer(model=model, args=training_arguments(cfg, tmp_path / str(packing)), train_dataset=data,
                                   data_collator=train_collator(task, tokenizer, packing))
        trainer.train()
        assert trainer.freed_memory.enabled  # row batches: the heap is trimmed (ReturnFreedMemory; not token budgets)
        trained[packing] = ([log["loss"] for log in trainer.state.log_history if "loss" in log], model.state_dict())
    assert len(trained[True][0]) == steps and trained[True][0] == pytest.approx(trained[False][0], rel=1e-5)
    eps = torch.finfo(torch.float32).eps
    moved = 0
    for name, start in initial.items():
        padded, packed = trained[False][1][name] - start, trained[True][1][name] - start
        moved += int(padded.abs().max() > 0)
        atol = steps * (lr * GRAD_ATOL + eps * float(start.abs().max() + padded.abs().max()))
        torch.testing.assert_close(packed, padded, rtol=GRAD_RTOL, atol=atol, msg=name)
    assert moved > len(initial) // 2  # the steps did train: most weights moved


def test_check_model_passes_a_packing_model_and_refuses_one_that_crosses(tokenizer):
    model = tiny_llama(tokenizer)
    check_model(model, PackedCollator())
    assert model.training  # the check leaves the model as it found it

    class Crossing(PackedCollator):  # keeps the model's cache on: attention crosses the packed examples
        def __call__(self, rows):
            return {k: v for k, v in super().__call__(rows).items() if k != "use_cache"}

    with pytest.raises(ConfigError, match="train.packing: LlamaForCausalLM .* crosses examples"):
        check_model(model, Crossing())


def _params(composed, overrides: dict):
    params = yaml.safe_load(yaml.safe_dump(composed))
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        params[section][name] = value
    return params


def test_packing_is_refused_at_load_where_it_cannot_work(composed, monkeypatch):
    from ftpipe.params import compose

    sections = ("task", "model", "method", "train")
    with pytest.raises(ConfigError, match=r"train.packing: a classification task cannot pack \(causal-LM tasks can: chat, summarization\)"):
        validate(_params(composed, {"train.packing": True}), sections)
    monkeypatch.chdir(REPO)
    for method in ("prompt_tuning", "prefix_tuning"):
        params = compose(["experiment=test_tiny_dialogsum", f"method={method}", "train.packing=true"])
        with pytest.raises(ConfigError, match=f"train.packing: method '{method}' puts virtual tokens before the text"):
            validate(params, sections)
    validate(compose(["experiment=test_tiny_dialogsum", "train.packing=true"]), sections)  # LoRA packs


