"""Import first in every stage after `download`: those stages must never touch the network.

huggingface_hub reads these variables when it is imported, so this module has to be
imported before transformers or datasets.
"""

import os

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
# On, and said so: the tokenize stage's fast tokenizer spreads each batch over every core. tokenizers
# turns its threads off by itself in forked children (datasets' num_proc, dataloader workers), and an
# explicit value keeps it from warning there.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

# Expected warnings and bookkeeping progress bars, silenced once for every stage (after the
# variables above: it imports datasets).
from ftpipe.core import quiet  # noqa: E402,F401
