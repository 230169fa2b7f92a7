"""Errors a user can fix: bad input data or bad configuration. Stages print them as one line."""

import sys
from contextlib import contextmanager
from typing import NoReturn


class FtpipeError(Exception):
    """Base class for errors that end a stage with a one-line message, not a traceback."""


class DataError(FtpipeError):
    """A bad record in an input file: names the file, the record and the field."""

    def __init__(self, file, message: str, record=None, field: str | None = None):
        self.file, self.record, self.field = str(file), record, field
        where = self.file
        if record is not None:
            where += f": record {record}"
        if field is not None:
            where += f": field '{field}'"
        super().__init__(f"{where}: {message}")


class ConfigError(FtpipeError):
    """A bad configuration value: names the params key."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"params.yaml: {key}: {message}")


def check(key: str, ok: bool, message: str) -> None:
    """The schemas' one-line test: ConfigError naming `key` unless `ok`."""
    if not ok:
        raise ConfigError(key, message)


# Offline mode, DNS, refused connections and timeouts, by class name: huggingface_hub raises its own
# (LocalEntryNotFoundError, OfflineModeIsEnabled), datasets the builtin ConnectionError, and the HTTP
# library below them (requests, httpx or httpx2, by version) its own transport errors.
_UNREACHABLE = {"ConnectionError", "TimeoutError", "Timeout", "TransportError", "LocalEntryNotFoundError"}


@contextmanager
def hub_reachable(key: str, name: str, stage: str):
    """Turn "cannot reach the Hub" into one line naming the params key, and what to do on an offline machine."""
    try:
        yield
    except Exception as err:
        if not _UNREACHABLE & {cls.__name__ for cls in type(err).__mro__}:
            raise
        raise ConfigError(key, f"the Hugging Face Hub is unreachable (offline, or no network) for '{name}': run "
                               f"`dvc repro {stage} && dvc push` on a connected machine, then `dvc pull` here") from None


def shown(text, limit: int | None = 40) -> str:
    """A value from a user's file as an error line may print it: control characters escaped (a terminal
    escape sequence stays inert text) and cut to `limit` characters, so a line never carries a whole
    record or a long secret."""
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return escaped if limit is None or len(escaped) <= limit else escaped[: limit - 3] + "..."


def fail(message) -> NoReturn:
    """End the command with `message` as one `error:` line on stderr, exit code 1. One line however the message
    was built (a runner's log shows it whole), with control characters escaped wherever they came from
    (a label in a config, a name in a file)."""
    print("error: " + shown(" ".join(str(message).split()), limit=None), file=sys.stderr)
    sys.exit(1)


def listed(names, limit: int = 10) -> str:
    """Column names for an error line: each `shown`, at most `limit` of them."""
    names = [shown(name) for name in names if not str(name).startswith("_")]  # _line and the like are ftpipe's own
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
