"""ftpipe's OmegaConf resolvers, registered wherever Hydra composes `conf/`.

Hydra imports every module under the `hydra_plugins` namespace when it starts, in
`python -m ftpipe.params` and in DVC's own composition on `dvc exp run` alike, so a resolver
defined here is there for both without any code in the stages.
"""

from omegaconf import OmegaConf


def data_inputs(source, files):
    """One entry per local data file: its path and the name of its fingerprint in data/inputs (ftpipe.core.config.data_inputs)."""
    from ftpipe.core.config import data_inputs as entries_of  # one definition, also used by the data_file stage

    entries = entries_of(source, OmegaConf.to_container(files) if OmegaConf.is_config(files) else files)
    # A ListConfig, not a list: DVC resolves the composition in place (OmegaConf.resolve), which
    # can put a container where the interpolation was, but not a plain list.
    return OmegaConf.create(entries)


if not OmegaConf.has_resolver("ftpipe_data_inputs"):
    OmegaConf.register_new_resolver("ftpipe_data_inputs", data_inputs)


def launch_prefix(launcher, nproc_per_node, nnodes, node_rank, rdzv_endpoint):
    """`python`, or the torchrun / accelerate launch command the train stage starts with (dvc.yaml)."""
    from ftpipe.core.launch import launch_prefix as compose_prefix  # one definition, also used to validate

    return compose_prefix(launcher, nproc_per_node, nnodes, node_rank, rdzv_endpoint)


if not OmegaConf.has_resolver("ftpipe_launch_prefix"):
    OmegaConf.register_new_resolver("ftpipe_launch_prefix", launch_prefix)


PLOT_SLOTS = 8  # the `${plot_specs[i]}` entries of dvc.yaml's top-level plots
TRAINING_CURVES = {"dvclive/train/plots/metrics": {"x": "step"}}


def plot_specs(task_type):
    """dvc.yaml's top-level plots: the task type's (PLOTS in its plug-in package), then the training curves.

    DVC's top-level plots cannot be a list chosen by task type (the schema wants the list written out), and a
    plot of a file the task never writes is an error in `dvc plots show`. So dvc.yaml lists PLOT_SLOTS
    entries, `${plot_specs[0]}` ... , and the slots a task leaves free repeat the training curves: DVC keys
    plots by name, so a repeated definition is shown once.
    """
    import importlib

    from ftpipe.tasks import TASK_TYPES

    module = TASK_TYPES.get(str(task_type))
    plots = [plot.spec() for plot in getattr(importlib.import_module(module), "PLOTS", [])] if module else []
    if len(plots) >= PLOT_SLOTS:
        raise ValueError(f"task type {task_type} declares {len(plots)} plots; dvc.yaml has room for "
                         f"{PLOT_SLOTS - 1} beside the training curves (PLOT_SLOTS in src/hydra_plugins)")
    return OmegaConf.create(plots + [TRAINING_CURVES] * (PLOT_SLOTS - len(plots)))


if not OmegaConf.has_resolver("ftpipe_plot_specs"):
    OmegaConf.register_new_resolver("ftpipe_plot_specs", plot_specs)


def conf_digest():
    """The digest of conf/ that params.yaml is composed from (ftpipe.params.conf_digest): the summary compares it.

    Every composition resolves it, before params.yaml is written: so it is also where a composition is
    refused while another run uses the workspace (ftpipe.workspace)."""
    from ftpipe.core.errors import fail
    from ftpipe.params import conf_digest as digest
    from ftpipe.workspace import WorkspaceBusy, refuse_if_busy

    try:
        refuse_if_busy()
    except WorkspaceBusy as busy:
        # An exception here reaches the user wrapped twice (OmegaConf, then DVC's "unexpected error" and its
        # support footer); the refusal is one line. SystemExit passes both, and DVC's context managers
        # still restore the workspace on the way out.
        fail(busy)
    return digest()


if not OmegaConf.has_resolver("ftpipe_conf_digest"):
    OmegaConf.register_new_resolver("ftpipe_conf_digest", conf_digest)


def learning_rate(value, written_for, *, _root_):
    """train.lr as an experiment writes it: `${ftpipe_lr:5.0e-5,full}` is 5e-5 for the method the
    experiment was written for (its `override /method`), and for any other method that method's own
    default (`lr` in conf/method/<name>.yaml; the experiment's value where the method has none).

    The rate that suits full fine-tuning barely moves an adapter or a lone head, so `-S method=lora`
    on an experiment runs at LoRA's rate; `-S train.lr=...` replaces the whole expression and sets
    the rate of any run. A literal `train.lr` in an experiment (the tiny test experiments) pins it
    for every method."""
    method = _root_.get("method") or {}
    if method.get("name") == str(written_for) or method.get("lr") is None:
        return value
    return method.get("lr")


if not OmegaConf.has_resolver("ftpipe_lr"):
    OmegaConf.register_new_resolver("ftpipe_lr", learning_rate)
