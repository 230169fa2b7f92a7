"""How stages load models at run time: tokenizers, a model with its task head, a base's identity.

Weights load only from safetensors (a pickled .bin can run code when loaded). Remote code runs
only when the caller says so, from the user's config (`model.trust_remote_code`) or an explicit
command-line flag, never from a file inside the model directory, which travels with the model.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from ftpipe.core.records import BaseRecord
from ftpipe.core.errors import ConfigError


@contextmanager
def custom_code_refused(model_dir: Path):
    """transformers' refusal of a folder that ships code (auto_map) as one line naming the folder and
    the key that allows it; any other ValueError is a bug, and keeps its traceback."""
    try:
        yield
    except ValueError as err:
        if "contains custom code" not in str(err):
            raise
        raise ConfigError("model.trust_remote_code", f"{model_dir} ships code that must run to load it (auto_map in its "
                                                     "config): set model.trust_remote_code=true only if you trust that code") from None


def load_tokenizer(model_dir: Path, task=None, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    if task is not None:
        task.prepare(tokenizer)
    return tokenizer


def load_for_task(task, model_dir: Path, tokenizer, trust_remote_code: bool = False, **kwargs):
    """A model with the task's head (a fresh head is seeded by the caller)."""
    from ftpipe.core import quiet

    kwargs = {"use_safetensors": True, "trust_remote_code": trust_remote_code, **kwargs}
    quiet.expect_fresh_heads(task.head_keys)  # transformers reports them missing from a base: expected
    model = task.model_class.from_pretrained(model_dir, **task.model_kwargs(), **kwargs)
    task.prepare(tokenizer, model)
    embeddings = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > embeddings:  # a token id past the table is an IndexError deep in the first forward pass
        raise ConfigError("model.path", f"{model_dir}: its tokenizer has {len(tokenizer)} tokens, the model embeds "
                                        f"{embeddings}: use the tokenizer the model was trained with")
    return model


def base_identity(base_dir: Path) -> dict:
    """What `download_model` recorded of where the base came from (Hub id and commit, package, ...)."""
    identity = BaseRecord.load(base_dir, missing_ok=True) or BaseRecord(path=str(base_dir))
    return identity.to_dict()  # its fields, less those it never recorded


def base_id(identity: dict) -> str:
    """The name a model card or adapter config gives the base: the Hub id, else the package or path.

    A base that an earlier ftpipe run tuned (source dvc) is named by the model it was tuned from.
    """
    if identity.get("source") == "dvc":
        return base_id(identity.get("tuned_from") or {"name": identity.get("name")})
    return identity.get("repo") or identity.get("path") or identity.get("name") or "unknown"
