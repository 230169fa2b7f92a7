"""ftpipe: a reproducible fine-tuning pipeline for transformer language models."""

import logging

__version__ = "0.1.0"

# On CPUs with AVX512-BF16, bitsandbytes warns at import that it cannot fetch an optional 4-bit
# kernel from the Hub. ftpipe runs offline and falls back to bitsandbytes' own kernel: not news.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
