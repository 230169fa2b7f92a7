"""Import first in every stage after `download`: those stages must never touch the network.

huggingface_hub reads these variables when it is imported, so this module has to be
imported before transformers or datasets.
"""

import os

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
