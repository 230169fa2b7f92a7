"""The Optuna study behind a search: its storage, sampler and pruner, who owns which trial, and the budget.

Storage is a journal file by default (.ftpipe/search/<study>.journal, git-ignored, beside the repository's
files) or any Optuna storage URL (an RDB such as PostgreSQL, for several machines): every process asks the
study for its own trial (ask/tell), so two never evaluate the same one. Each trial records the host and PID
that runs it; a RUNNING trial whose process on this host is gone (a killed search) is marked FAIL and its
params are enqueued, so the next trial reruns it (resuming from its checkpoint, whose fingerprint is the same).
The budget counts trials that are finished (complete, pruned, failed on their own) or still running; the
interrupted ones, rerun, do not count.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from optuna.samplers import GridSampler

from ftpipe.core.errors import shown
from ftpipe.search.space import SearchConfig, SearchError, grid
from ftpipe.training.pruning import make_pruner, storage_from

JOURNALS = Path(".ftpipe/search")
SPACE_ATTR = "ftpipe_space"  # the study's search-space fingerprint: a study of another space under the same name is refused
WORKER_ATTR, INTERRUPTED_ATTR, SURPLUS_ATTR = "worker", "interrupted", "surplus"


def storage_spec(study: str, storage: str | None) -> str:
    """The storage a search uses: the URL or journal path given, else this repository's journal for the study."""
    if storage:
        return storage if "://" in storage else str(Path(storage).resolve())
    JOURNALS.mkdir(parents=True, exist_ok=True)
    return str((JOURNALS / f"{study}.journal").resolve())


def shown_storage(spec: str) -> str:
    """The storage for an error line: a URL's password hidden."""
    if "://" not in spec:
        return shown(spec, 120)
    try:
        from sqlalchemy.engine import make_url

        return shown(make_url(spec).render_as_string(hide_password=True), 120)
    except Exception:  # noqa: BLE001  (not a URL SQLAlchemy parses: show its scheme alone)
        return spec.split("://", 1)[0] + "://..."


def open_storage(spec: str):
    """The storage, reached now: an unreachable URL or journal is one line, before any trial."""
    import optuna

    try:
        storage = optuna.storages.get_storage(storage_from(spec))
        storage.get_all_studies()
    except ImportError as err:  # the URL's database driver (psycopg2, pymysql, ...) is not installed here
        raise SearchError(f"--storage {shown_storage(spec)}", f"unreachable: its driver {shown(err.name)} is not installed") from None
    except Exception as err:  # noqa: BLE001  (SQLAlchemy's, a driver's or the file system's errors)
        # A URL's error text may carry the URL with its password: only the error's kind is shown.
        reason = type(err).__name__ if "://" in spec else " ".join(str(err).split())[:120]
        raise SearchError(f"--storage {shown_storage(spec)}", f"unreachable ({reason})") from None
    return storage


def sampler(cfg: SearchConfig, offset: int = 0):
    """The config's sampler. A seed is offset by the trials the study already holds: a fresh search is
    reproducible, and a resumed or second process draws a new stream instead of repeating the first draws."""
    import optuna

    options = {k: v for k, v in cfg.sampler.items() if k != "name"}
    try:
        if cfg.sampler["name"] == "grid":  # its seed orders the grid, which every process must share: never offset
            return AskTellGrid(grid(cfg), **options)
        if options.get("seed") is not None:
            options["seed"] = int(options["seed"]) + offset
        kinds = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
        return kinds[cfg.sampler["name"]](**options)
    except TypeError as err:
        raise SearchError(f"{cfg.source}: sampler", " ".join(str(err).split())[:160]) from None


class AskTellGrid(GridSampler):
    """GridSampler driven by ask and tell: on the last point it stops an optimize loop (study.stop), which
    outside one raises; claim() asks is_exhausted instead."""

    def after_trial(self, study, trial, state, values) -> None:
        return None


def open_study(cfg: SearchConfig, name: str, spec: str):
    """The study `name` in the storage, created if new; refused if it searches another space."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(spec)
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True, direction=cfg.direction,
                                sampler=sampler(cfg), pruner=make_pruner(cfg.pruner))
    if study.trials:
        study.sampler = sampler(cfg, offset=len(study.trials) + os.getpid() % 1000 * 1000)
    found = study.user_attrs.get(SPACE_ATTR)
    if found is None:
        study.set_user_attr(SPACE_ATTR, cfg.fingerprint())
    elif found != cfg.fingerprint():
        raise SearchError(f"--study {shown(name)}", f"already holds a search of another space or objective (fingerprint {found}, "
                                                     f"{cfg.source} is {cfg.fingerprint()}): name another study")
    if study.direction.name.lower() != cfg.direction:
        raise SearchError(f"--study {shown(name)}", f"already {study.direction.name.lower()}s its objective")
    return study


def worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    """Whether `pid` runs: a zombie (killed, not yet reaped by its new parent) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS): kill's answer stands
        return True


def reap_interrupted(study) -> list[int]:
    """Mark FAIL the RUNNING trials whose search process on this host has died, and enqueue their params
    (the next ask reruns them). Returns their numbers."""
    from optuna.trial import TrialState

    host, reaped = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(trial.user_attrs.get(WORKER_ATTR, ""))
        owner_host, _, pid = owner.rpartition(":")
        if owner_host == host and pid.isdigit() and not _alive(int(pid)):
            try:  # another process resuming at the same moment may have reaped it first: a finished trial refuses both
                study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED_ATTR, True)
                study.tell(trial.number, state=TrialState.FAIL)
            except (RuntimeError, ValueError):
                continue
            if trial.params:
                study.enqueue_trial(trial.params, user_attrs={"rerun_of": trial.number})
            reaped.append(trial.number)
    return reaped


def counted(trials) -> list:
    """The trials the budget counts: all but the interrupted ones (rerun) and a process's surplus asks."""
    return [t for t in trials if not t.user_attrs.get(INTERRUPTED_ATTR) and not t.user_attrs.get(SURPLUS_ATTR)]


def claim(study, n_trials: int):
    """A new trial of the study for this process, or None when the budget is spent. Two processes may ask
    at once: a trial numbered past the budget (counting only trials before it) is given back as surplus."""
    from optuna.trial import TrialState

    trials = counted(study.get_trials(deepcopy=False))
    taken = [t for t in trials if t.state != TrialState.WAITING]  # a waiting rerun is what the next ask gets
    if len(taken) >= n_trials or (_grid_done(study) and len(taken) == len(trials)):
        return None
    trial = study.ask()
    trial.set_user_attr(WORKER_ATTR, worker())
    before = [t for t in counted(study.get_trials(deepcopy=False)) if t.number < trial.number]
    if len(before) >= n_trials:
        trial.set_user_attr(SURPLUS_ATTR, True)
        study.tell(trial, state=TrialState.FAIL)
        return None
    return trial


def _grid_done(study) -> bool:
    return isinstance(study.sampler, GridSampler) and study.sampler.is_exhausted(study)
