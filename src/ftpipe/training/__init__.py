"""Training, one job per module: the Trainer's settings (arguments), a run and its `fit` (run), resuming
from checkpoints (resume) and what a tuned model records of how it was made (provenance).

The process state (accelerate's PartialState, made once by `run.process_state`) is passed in, never
fetched: the train stage and the benchmarks call `fit` the same way.
"""
