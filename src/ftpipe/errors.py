"""Errors a user can fix: bad input data or bad configuration. Stages print them as one line."""


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
