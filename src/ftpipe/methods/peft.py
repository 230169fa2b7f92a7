"""Any peft method (LoRA, DoRA, IA3, AdaLoRA, LoHa, LoKr, prefix or prompt tuning, ...) from its config kwargs.

`method.peft` holds the kwargs of the peft config named by its `peft_type`; a new PEFT method is a
`conf/method/<name>.yaml` with `type: peft`. Kwargs are checked against peft's own config class at
config load. For the LoRA family `target_modules: null` takes the model family's
`model.lora_target_modules`, and targets that wrap no module fail naming the model's linear layers.
`method.quantization` (BitsAndBytesConfig kwargs) loads the base in 4 bits first (QLoRA). The task
head stays trainable: peft's task type (SEQ_CLS, ...) saves it with the adapter.

Where train.precision resolves to bf16, the frozen base is stored in bf16 (`method.frozen_base: compute`,
the default), as PEFT's and the alignment handbook's recipes load it: under autocast over fp32 weights
every forward pass casts each frozen weight to bf16 again. What trains (adapters, the task head, virtual
tokens) stays in fp32. `frozen_base: fp32` keeps the base in fp32 (autocast casts it per pass). QLoRA's
base is 4-bit either way (prepare_model_for_kbit_training keeps its other parts in fp32).
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ftpipe.core.errors import check, shown
from ftpipe.core.errors import ConfigError
from ftpipe.methods.base import Method as BaseMethod
from ftpipe.methods.base import MethodConfig
from ftpipe.models.loading import base_id, base_identity, load_for_task

log = logging.getLogger(__name__)
TARGETED = ("LORA", "LOHA", "LOKR", "IA3", "ADALORA", "VERA", "BOFT", "OFT")  # types with target_modules


@dataclass
class Config(MethodConfig):
    type: str = "peft"
    peft: dict[str, Any] = field(default_factory=dict)  # the peft config's kwargs, with peft_type
    quantization: dict[str, Any] = field(default_factory=dict)  # BitsAndBytesConfig kwargs (4-bit base)
    frozen_base: str = "compute"  # compute: the frozen base in bf16 when training in bf16 | fp32: always fp32

    def __post_init__(self):
        check("method.frozen_base", self.frozen_base in ("compute", "fp32"), f"compute or fp32, got {shown(self.frozen_base)}")
        check("method.peft.peft_type", bool(self.peft.get("peft_type")), f"required for method '{self.name}' (LORA, IA3, PREFIX_TUNING, ...)")
        peft_config_class(self.peft)  # unknown type or kwarg: a one-line error now, not mid-training

    def packing_conflict(self):
        from peft import PromptLearningConfig

        if issubclass(peft_config_class(self.peft), PromptLearningConfig):
            # Prompt/p-tuning prepend virtual tokens to the one packed row (only the first example would get
            # them); prefix tuning passes its prefix as a cache, which turns transformers' packed masks off.
            return "puts virtual tokens before the text, once per row: packed examples would not each get them"
        return None


def adalora_budget(model):
    """AdaLoRA moves its rank budget between layers by the importance it reads from the gradients
    after each optimizer step; the Trainer never asks it to (peft's examples call it by hand), and
    without it AdaLoRA is a LoRA held back by its orthogonality penalty."""
    from transformers import TrainerCallback

    class AdaLoraBudget(TrainerCallback):
        def on_optimizer_step(self, args, state, control, **kwargs):  # after the step, before the gradients are zeroed
            model.base_model.update_and_allocate(state.global_step)

    return AdaLoraBudget()


def adalora_trainer_class():
    """The Trainer for AdaLoRA, whose validation loss is the task's loss alone.

    peft's AdaLoRA adds `orth_reg_weight` times its orthogonality penalty (how far each adapter's
    A and B are from orthonormal) to the model's loss in every forward pass, evaluation included.
    That penalty starts near 1.4 (MiniLM, weight 0.5) and falls as the adapters become orthonormal,
    whatever the task loss does: the validation `eval_loss` then fell steadily while the model
    stayed at chance, the best checkpoint was chosen on it, and rates could not be compared on it
    (ladder --tune). Training still minimises loss plus penalty; evaluation leaves it out.

    And the best checkpoint loads at the end with the ranks it was saved with: each checkpoint
    stores only the ranks kept at its step (`rank_pattern` in its adapter_config.json), and the
    Trainer loaded it into the running model under the running pattern (the last step's), which
    failed on a size mismatch whenever the best step was not the last."""
    from ftpipe.trainer import ResumableTrainer

    class AdaLoraTrainer(ResumableTrainer):
        def _load_best_model(self):
            saved = Path(self.state.best_model_checkpoint or "") / "adapter_config.json"
            if saved.is_file():
                peft_model = self.accelerator.unwrap_model(self.model)
                peft_model.peft_config[peft_model.active_adapter].rank_pattern = json.loads(saved.read_text()).get("rank_pattern")
            return super()._load_best_model()

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            peft_model = self.accelerator.unwrap_model(model)
            config = peft_model.peft_config[peft_model.active_adapter]
            weight, config.orth_reg_weight = config.orth_reg_weight, 0.0
            try:
                return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
            finally:
                config.orth_reg_weight = weight

    return AdaLoraTrainer


def peft_config_class(settings: dict):
    from peft import PeftType
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    peft_type = str(settings.get("peft_type", "")).upper()
    if peft_type not in PeftType.__members__:
        raise ConfigError("method.peft.peft_type", f"unknown peft type '{settings.get('peft_type')}' (known: {', '.join(PeftType.__members__)})")
    cls = PEFT_TYPE_TO_CONFIG_MAPPING[peft_type]
    unknown = sorted(set(settings) - set(cls.__dataclass_fields__) - {"peft_type"})
    if unknown:
        raise ConfigError(f"method.peft.{unknown[0]}", f"not a {cls.__name__} setting")
    return cls


class Method(BaseMethod):
    def build(self, task, base_dir, tokenizer, model_cfg, run=None):
        from peft import get_peft_model

        quantized = bool(self.cfg.quantization)
        kwargs = quantization_kwargs(self.cfg.quantization, run) if quantized else {}
        bf16_base = not quantized and self.cfg.frozen_base == "compute" and bool(getattr(getattr(run, "args", None), "bf16", False))
        if bf16_base:
            kwargs["dtype"] = torch.bfloat16
        model = load_for_task(task, base_dir, tokenizer, trust_remote_code=model_cfg.trust_remote_code, **kwargs)
        if quantized:
            from peft import prepare_model_for_kbit_training

            # Casts norms/head to fp32 and freezes the 4-bit base; checkpointing is the Trainer's call.
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
            keep_4bit_layout_on_cpu(model)
        config = self.peft_config(task, model, model_cfg, run)
        if config.peft_type == "PREFIX_TUNING" and task.peft_task_type != "CAUSAL_LM" and not _takes_past_key_values(model):
            # peft would only find out at the first forward pass, mid-training.
            raise ConfigError("method", f"'{self.cfg.name}' does not fit {type(model).__name__}: prefix tuning needs a model "
                              "that takes past key values (a decoder such as GPT-2 or Llama)")
        if config.peft_type in ("PROMPT_TUNING", "P_TUNING"):  # virtual tokens go before the text, in its positions
            task.cfg.check_model_limit(base_dir, config.num_virtual_tokens, f"the {config.num_virtual_tokens} virtual tokens of '{self.cfg.name}'")
        model = get_peft_model(model, config)
        if bf16_base:  # the optimizer's updates stay fp32: adapters, head and virtual tokens are trained in full precision
            for param in model.parameters():
                if param.requires_grad:
                    param.data = param.data.float()
        self.base_name = base_id(base_identity(base_dir))
        model.enable_input_require_grads()  # so gradient checkpointing works with a frozen embedding
        return model

    def fit(self, model, run) -> dict:
        if model.peft_config[model.active_adapter].peft_type == "ADALORA":
            run.callbacks.append(adalora_budget(model))
            trainer = run.make_trainer(model, trainer_class=adalora_trainer_class())
            return trainer.train(resume_from_checkpoint=str(run.resume_from) if run.resume_from else None).metrics
        return super().fit(model, run)

    def save(self, model, tokenizer, out_dir: Path, run) -> None:
        super().save(model, tokenizer, out_dir, run)
        if run.is_main:
            # The adapter names its base by identity (Hub id, package), not by the folder it was loaded
            # from here (models/base). Only in the saved file: peft looks the name up while it saves.
            path = Path(out_dir) / "adapter_config.json"
            config = json.loads(path.read_text())
            path.write_text(json.dumps({**config, "base_model_name_or_path": self.base_name}, indent=2, sort_keys=True) + "\n")

    def peft_config(self, task, model, model_cfg, run=None):
        settings = {k: v for k, v in self.cfg.peft.items() if v is not None or k != "target_modules"}
        settings["peft_type"] = str(settings["peft_type"]).upper()
        settings.setdefault("task_type", task.peft_task_type)
        if settings["peft_type"] == "ADALORA" and not settings.get("total_step") and run is not None:
            settings["total_step"] = planned_steps(run)  # its rank schedule needs the length of training
        cls = peft_config_class(settings)
        if settings["peft_type"] in TARGETED and "target_modules" in cls.__dataclass_fields__:
            settings["target_modules"] = check_targets(model, settings.get("target_modules") or list(model_cfg.lora_target_modules))
        settings.pop("peft_type")
        try:
            return cls(**settings)
        except (TypeError, ValueError) as err:
            raise ConfigError("method.peft", " ".join(str(err).split())) from None

    @classmethod
    def load(cls, task, tuned_dir, base_dir, tokenizer, trust_remote_code=False):
        from peft import PeftModel

        base = load_for_task(task, base_dir, tokenizer, trust_remote_code=trust_remote_code)
        saved = json.loads((Path(tuned_dir) / "adapter_config.json").read_text()) if (Path(tuned_dir) / "adapter_config.json").is_file() else {}
        with warnings.catch_warnings():
            if saved.get("peft_type") == "ADALORA":
                # peft checks rank_pattern keys as LoRA's (module names); AdaLoRA's are its lora_E parameters, which
                # AdaLoRA itself applies as it loads: the reloaded model gives the trained one's logits (tests/test_methods.py).
                warnings.filterwarnings("ignore", message="The following rank_pattern keys did not match", category=RuntimeWarning)
            return PeftModel.from_pretrained(base, tuned_dir)


def quantization_kwargs(settings: dict, run=None) -> dict:
    """from_pretrained kwargs for a bitsandbytes-quantized base, on this process's own device."""
    from transformers import BitsAndBytesConfig

    settings = dict(settings)
    dtype = settings.get("bnb_4bit_compute_dtype", "auto")
    if dtype == "auto":  # bf16 where the GPU has it; fp32 on a CPU, where bf16 matmuls are slow
        dtype = "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    settings["bnb_4bit_compute_dtype"] = getattr(torch, dtype)
    # Each process of a multi-GPU run loads its copy onto its own GPU (the local rank), never all onto
    # GPU 0. On a CPU everything stays there; fresh task heads are kept out of quantization through
    # llm_int8_skip_modules (conf/method/qlora.yaml).
    local_rank = run.local_rank if run is not None else 0
    device_map = {"": local_rank} if torch.cuda.is_available() else "cpu"
    return {"quantization_config": BitsAndBytesConfig(**settings), "device_map": device_map}


def keep_4bit_layout_on_cpu(model) -> None:
    """On a CPU with AVX512-BF16, bitsandbytes (0.49, 0.50) repacks a 4-bit layer for its fast
    kernel at the first forward pass in eval mode, and fails ("shape '[32, 0]' is invalid") for a
    layer whose input width is not a multiple of its quantization block. Such layers keep the plain
    layout, which every CPU runs; the others still get the fast one."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and getattr(module, "support_avx512bf16_for_cpu", False):
            state = module.weight.quant_state
            if state is not None and module.in_features % state.blocksize:
                module.support_avx512bf16_for_cpu = False


def _takes_past_key_values(model) -> bool:
    """peft's own test for prefix tuning outside causal LMs (transformers v5 names the cache `cache` instead)."""
    import inspect

    return any("past_key_values" in inspect.signature(m.forward).parameters for m in (model, model.base_model))


def planned_steps(run) -> int:
    """Optimizer steps the run will take (max_steps, else epochs over the per-process batches)."""
    import math

    if run.args.max_steps > 0:
        return run.args.max_steps
    per_step = run.args.per_device_train_batch_size * run.args.gradient_accumulation_steps * run.state.num_processes
    return max(1, math.ceil(len(run.train_set) / per_step) * math.ceil(run.args.num_train_epochs))


def linear_names(model) -> list[str]:
    """Distinct short names of the model's linear layers (nn.Linear, bnb Linear4bit, GPT-2's Conv1D)."""
    from transformers.pytorch_utils import Conv1D

    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
             if isinstance(module, (torch.nn.Linear, Conv1D))}
    return sorted(names)


def check_targets(model, targets):
    """`all-linear` as peft spells it, or a list that must match at least one module."""
    targets = [targets] if isinstance(targets, str) else list(targets)
    if targets == ["all-linear"]:
        return "all-linear"
    module_names = [name for name, _ in model.named_modules()]
    hits = [t for t in targets if any(name == t or name.endswith("." + t) for name in module_names)]
    if not hits:
        raise ConfigError("model.lora_target_modules",
                          f"{targets} match no module of {type(model).__name__}; its linear layers are: "
                          f"{', '.join(linear_names(model))} (or use all-linear)")
    missing = sorted(set(targets) - set(hits))
    if missing:
        log.warning("LoRA targets %s match nothing in %s (ignored)", missing, type(model).__name__)
    return targets
