"""ftpipe: a reproducible fine-tuning pipeline for transformer language models."""

__version__ = "0.1.0"
