"""Feature-based: the frozen base model embeds each text, a scikit-learn logistic regression classifies.

The rung below fine-tuning on the Yelp tutorial's ladder, and the worked example of a method with
its own fit: no Trainer, no gradients through the model. Only the classifier is saved (a linear
layer in safetensors, beside the pooling it expects); loading puts it on the same base again, so
evaluate, predict and compare treat it like any tuned classifier.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ftpipe.core.errors import check
from ftpipe.core.records import FeaturesRecord
from ftpipe.methods.base import Method as BaseMethod
from ftpipe.methods.base import MethodConfig

log = logging.getLogger(__name__)
HEAD = "features_head.safetensors"


@dataclass
class Config(MethodConfig):
    type: str = "features"
    needs: list[str] = field(default_factory=lambda: ["example_label"])
    pooling: str = "mean"  # mean (over real tokens) | cls (first token) | last (last real token, for decoders)
    C: float = 1.0  # inverse regularisation strength of the logistic regression
    max_iter: int = 1000
    batch_size: int = 32  # texts embedded at once

    def __post_init__(self):
        check("method.pooling", self.pooling in ("mean", "cls", "last"), "mean, cls or last")
        check("method.C", self.C > 0, "must be > 0")
        check("method.needs", "example_label" in self.needs, "features pools an example's embedding for one label: needs example_label")


class FeatureClassifier(torch.nn.Module):
    """A frozen encoder, a pooling, a linear layer: `.logits` like a transformers classifier."""

    def __init__(self, encoder, pooling: str, num_labels: int):
        super().__init__()
        self.encoder, self.pooling = encoder.requires_grad_(False), pooling
        self.head = torch.nn.Linear(encoder.config.hidden_size, num_labels)
        self.config = encoder.config

    def embed(self, input_ids, attention_mask, **_):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        if self.pooling == "last":  # right padding: the last real token is at length - 1
            return hidden[torch.arange(len(hidden)), attention_mask.sum(1) - 1]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    def forward(self, input_ids, attention_mask, labels=None, **_):
        from transformers.modeling_outputs import SequenceClassifierOutput

        return SequenceClassifierOutput(logits=self.head(self.embed(input_ids, attention_mask).float()))


class Method(BaseMethod):
    def build(self, task, base_dir, tokenizer, model_cfg, run=None):
        return _classifier(task, base_dir, tokenizer, self.cfg.pooling, model_cfg.trust_remote_code)

    def fit(self, model, run) -> dict:
        from sklearn.linear_model import LogisticRegression

        from ftpipe.inference import batched, model_inputs

        start = time.perf_counter()
        step = lambda model, batch, _: model.embed(**batch).float().cpu().numpy()  # noqa: E731
        features = np.stack(batched(model, model_inputs(run.train_set), run.collator, step, self.cfg.batch_size))
        labels = np.asarray(run.train_set["labels"])
        # Seeded and deterministic: every process of a multi-process run fits the same classifier.
        classifier = LogisticRegression(C=self.cfg.C, max_iter=self.cfg.max_iter, random_state=run.args.seed)
        classifier.fit(features, labels)
        weight = np.zeros((model.head.out_features, features.shape[1]), dtype=np.float32)
        bias = np.full(model.head.out_features, -1e4, dtype=np.float32)  # classes absent from training never win
        weight[classifier.classes_], bias[classifier.classes_] = _full_rank(classifier)
        with torch.no_grad():
            model.head.weight.copy_(torch.from_numpy(weight))
            model.head.bias.copy_(torch.from_numpy(bias))
        seconds = time.perf_counter() - start
        accuracy = float(classifier.score(features, labels))
        log.info("logistic regression on %d embeddings: train accuracy %.3f in %.1f s", len(labels), accuracy, seconds)
        return {"train_runtime": seconds, "train_samples_per_second": len(labels) / seconds, "train_accuracy": accuracy}

    def save(self, model, tokenizer, out_dir, run) -> None:
        from safetensors.torch import save_file

        if run.is_main:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            save_file({"weight": model.head.weight.contiguous(), "bias": model.head.bias.contiguous()}, str(Path(out_dir) / HEAD))
            FeaturesRecord(model.pooling).save(out_dir)

    @classmethod
    def load(cls, task, tuned_dir, base_dir, tokenizer, trust_remote_code=False):
        from safetensors.torch import load_file

        pooling = FeaturesRecord.load(tuned_dir).pooling
        model = _classifier(task, base_dir, tokenizer, pooling, trust_remote_code)
        model.head.load_state_dict(load_file(str(Path(tuned_dir) / HEAD)))
        return model


def _classifier(task, base_dir, tokenizer, pooling: str, trust_remote_code: bool) -> FeatureClassifier:
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(base_dir, use_safetensors=True, trust_remote_code=trust_remote_code)
    task.prepare(tokenizer, encoder)
    return FeatureClassifier(encoder, pooling, len(task.cfg.labels))


def _full_rank(classifier) -> tuple[np.ndarray, np.ndarray]:
    """One weight row per class: scikit-learn keeps a single row for two classes (the positive one)."""
    coef, intercept = classifier.coef_, classifier.intercept_
    if coef.shape[0] == 1:  # binary: logit(pos) - logit(neg) = w.x + b, split symmetrically
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    return coef, intercept
