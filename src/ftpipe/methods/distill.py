"""Distillation: a tuned teacher teaches a smaller student, the base model with fewer layers.

The loss is `alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * cross-entropy`, the logits
of both softened by the temperature T. The teacher is any model source (`method.teacher`, the same
keys as `model`): usually `source: dvc` with the repository, path and revision of an earlier ftpipe
run (a commit or an experiment), which DVC fetches at that revision, so the dependency is versioned.
The student saves as an ordinary full model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ftpipe.core.config import ModelConfig

from ftpipe.core.errors import check
from ftpipe.methods.base import Method as BaseMethod
from ftpipe.methods.base import MethodConfig
from ftpipe.models.loading import load_for_task

log = logging.getLogger(__name__)


@dataclass
class Config(MethodConfig):
    type: str = "distill"
    needs: list[str] = field(default_factory=lambda: ["example_label"])  # its loss softens one class distribution per example
    teacher: dict[str, Any] = field(default_factory=dict)  # a model source: source, path, repo, revision, ...
    temperature: float = 2.0
    alpha: float = 0.5  # weight of the teacher's soft targets; 1 - alpha on the labels
    student_layers: int = 0  # transformer layers of the base the student keeps, evenly spaced (0: half)

    def __post_init__(self):
        check("method.teacher", bool(self.teacher), "give the teacher model (source dvc with repo, path, revision; or any model source)")
        check("method.temperature", self.temperature > 0, "must be > 0")
        check("method.alpha", 0 <= self.alpha <= 1, "a weight in [0, 1]")
        check("method.student_layers", self.student_layers >= 0, "must be >= 0")
        from ftpipe.core.errors import ConfigError

        try:  # the teacher's source, checked like model's
            ModelConfig(**{"name": "teacher", **self.teacher})
        except ConfigError as err:
            raise ConfigError(err.key.replace("model.", "method.teacher.", 1), str(err).split(": ", 2)[-1]) from None


class Method(BaseMethod):
    def build(self, task, base_dir, tokenizer, model_cfg, run=None):
        from ftpipe.methods.freeze import _layer_list

        self.task = task  # the teacher gets the same head
        model = super().build(task, base_dir, tokenizer, model_cfg, run)
        layers = _layer_list(model)
        n = self.cfg.student_layers or (len(layers) + 1) // 2
        if n > len(layers):
            from ftpipe.core.errors import ConfigError

            raise ConfigError("method.student_layers", f"the base has only {len(layers)} layers")
        # Evenly spaced layers of the teacher-sized base (DistilBERT's initialisation keeps every other one).
        kept = [layers[int(i * len(layers) / n)] for i in range(n)]
        path = next(name for name, module in model.named_modules() if module is layers)
        parent, _, attr = path.rpartition(".")
        setattr(model.get_submodule(parent), attr, torch.nn.ModuleList(kept))
        model.config.num_hidden_layers = n
        for i, layer in enumerate(kept):  # attention layers know their index (for caches)
            if hasattr(getattr(layer, "attention", None), "layer_idx"):
                layer.attention.layer_idx = i
        return model

    def fit(self, model, run) -> dict:
        teacher = self.teacher(run)
        trainer = run.make_trainer(model, trainer_class=distill_trainer_class(), teacher=teacher,
                                   temperature=self.cfg.temperature, alpha=self.cfg.alpha)
        metrics = trainer.train(resume_from_checkpoint=str(run.resume_from) if run.resume_from else None).metrics
        if run.is_main:
            metrics["teacher"] = self.teacher_record(sum(p.numel() for p in teacher.parameters()))
        return metrics

    def teacher_record(self, params: int) -> dict:
        """The teacher's source and size, and for an ftpipe run fetched through DVC its headline metrics
        and evaluation speed as that run measured them (metrics/tuned.json, runs/evaluate/tuned/timing.json
        at the revision): the compare report sets the student beside its teacher."""
        cfg = self.cfg.teacher
        record = {**{k: cfg[k] for k in ("source", "repo", "path", "revision", "name") if cfg.get(k)}, "params": params}
        if cfg.get("source") == "dvc":
            import dvc.api

            from ftpipe.core.records import EVALUATION_RUNS, TimingRecord
            from ftpipe.core.results import Scores

            for key, path in (("metrics", "metrics/tuned.json"), ("timing", str(TimingRecord.file_in(EVALUATION_RUNS / "tuned")))):
                try:
                    text = dvc.api.read(path, repo=cfg.get("repo") or ".", rev=cfg.get("revision"))
                    source = f"{path} at {cfg.get('revision')}"
                    record[key] = (TimingRecord.parse(text, source).to_dict() if key == "timing"
                                   else Scores.load_file(source, text).values)
                except Exception as err:  # a run from before timing.json existed; the report shows a dash
                    log.warning("teacher: no %s at %s (%s)", path, cfg.get("revision"), " ".join(str(err).split())[:200])
        return record

    def teacher(self, run):
        """The teacher, fetched once into the run's scratch space (the main process fetches, the others wait)."""
        from ftpipe.models.sources import download_model

        folder = Path(run.args.output_dir) / "teacher"
        with run.state.main_process_first():
            if run.is_main and not folder.exists():
                download_model(ModelConfig(**{"name": "teacher", **self.cfg.teacher}), folder)
        teacher = load_for_task(self.task, folder, run.tokenizer).eval()
        teacher.requires_grad_(False)
        log.info("teacher: %d parameters, from %s", sum(p.numel() for p in teacher.parameters()), self.cfg.teacher)
        return teacher


def distill_trainer_class():
    """Defined on use: methods are imported by the stages that only load models, which need no Trainer."""
    from ftpipe.trainer import ResumableTrainer

    class DistillTrainer(ResumableTrainer):
        def __init__(self, *args, teacher, temperature: float, alpha: float, **kwargs):
            super().__init__(*args, **kwargs)
            self.teacher, self.temperature, self.alpha = teacher, temperature, alpha

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            import torch.nn.functional as F

            outputs = model(**inputs)
            with torch.no_grad():
                self.teacher.to(outputs.logits.device)
                soft = self.teacher(**{k: v for k, v in inputs.items() if k != "labels"}).logits
            t = self.temperature
            kl = F.kl_div(F.log_softmax(outputs.logits / t, -1), F.softmax(soft.float() / t, -1), reduction="batchmean") * t * t
            loss = self.alpha * kl + (1 - self.alpha) * outputs.loss
            return (loss, outputs) if return_outputs else loss

    return DistillTrainer
