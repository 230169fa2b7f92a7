"""ftpipe's OmegaConf resolvers, registered wherever Hydra composes `conf/`.

Hydra imports every module under the `hydra_plugins` namespace when it starts, in
`python -m ftpipe.config` and in DVC's own composition on `dvc exp run` alike, so a resolver
defined here is there for both without any code in the stages.
"""

from pathlib import PurePath

from omegaconf import OmegaConf


def data_inputs(source, files):
    """One entry per local data file: its path and the name of its fingerprint in data/inputs.

    dvc.yaml makes each path a dependency (a `foreach` stage per file) so that editing a
    record of a user's own file reruns the pipeline from there; DVC cannot take a list as deps.
    """
    entries = [] if source != "local" or not files else [
        {"path": str(path), "name": f"{split}-{i:02d}-{PurePath(str(path)).name}"}
        for split, paths in files.items() for i, path in enumerate(paths or [])]
    # A ListConfig, not a list: DVC resolves the composition in place (OmegaConf.resolve), which
    # can put a container where the interpolation was, but not a plain list.
    return OmegaConf.create(entries)


if not OmegaConf.has_resolver("ftpipe_data_inputs"):
    OmegaConf.register_new_resolver("ftpipe_data_inputs", data_inputs)
