"""`ftpipe-search` (`python -m ftpipe.tools.search`): an Optuna search whose trials are DVC experiments.

    ftpipe-search --search tiny -S experiment=test_tiny                  # conf/search/tiny.yaml, 12 trials
    ftpipe-search --search tiny --study lr-r --storage postgresql://...  # one study shared by several machines
    ftpipe-search --search tiny --no-promote                             # a worker: trials only

The space, budget, objective, sampler and pruner come from conf/search/<name>.yaml (ftpipe.search.space).
Each trial runs as `dvc exp run -n search-<study>-<n>` with its `-S` overrides after the `-S` given here,
one after another in this workspace (so each has a lock, metrics and lineage, and `dvc exp show` lists
it); the train stage reports every validation score to the study and stops when the pruner prunes the
trial (ftpipe.training.pruning). The study lives in a journal file (.ftpipe/search/<study>.journal,
git-ignored) or at --storage: a search started again resumes it (finished trials are kept, one
interrupted by a kill is marked failed and rerun), and several processes, each in its own checkout,
share it without running a trial twice; push each machine's experiments with `dvc exp push`.

At the end the best configuration and the default (or --baseline's runs) are trained over `seeds`
training seeds and compared with ftpipe-compare's seed-aware test: reports/search.md says whether to
adopt it, with every trial, the parameters' importances and plot files (ftpipe.search.report).
"""

from __future__ import annotations

import argparse
import re
import time

from ftpipe.core.errors import FtpipeError, fail, shown
from ftpipe.search.space import SearchError, check, load_search

STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # it becomes part of experiment names and a file name


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--search", required=True, help="conf/search/<name>.yaml (or a path to a YAML file)")
    parser.add_argument("--study", help="the study's name (default: the search config's name)")
    parser.add_argument("--storage", help="an Optuna storage URL or a journal file (default: .ftpipe/search/<study>.journal)")
    parser.add_argument("-S", "--set-param", dest="overrides", action="append", default=[], help="a param override for every run")
    parser.add_argument("--n-trials", type=int, help="override the config's n_trials")
    parser.add_argument("--timeout", type=float, help="override the config's timeout (seconds of wall time for this process)")
    parser.add_argument("--seeds", type=int, help="override the config's seeds (promotion runs per arm)")
    parser.add_argument("--baseline", help="promote against these runs (exp1,exp2 or prefix-*) instead of the default over seeds")
    parser.add_argument("--no-promote", action="store_true", help="run trials only (a worker beside the process that promotes)")
    return parser.parse_args(argv)


def configure(args):
    """The search config with the command line's overrides, checked against the composed params: (cfg, params)."""
    cfg = load_search(args.search)
    for key in ("n_trials", "timeout", "seeds"):
        value = getattr(args, key)
        if value is not None:
            if value < 1:
                raise SearchError(f"--{key.replace('_', '-')}", f"must be at least 1, got {value:g}")
            setattr(cfg, key, value)
    cfg.baseline = args.baseline or cfg.baseline
    study = args.study or cfg.name
    if not STUDY_NAME.match(study):
        raise SearchError(f"--study {shown(study)}", "letters, digits, '.', '_' and '-' only (it names experiments and a file)")
    return cfg, check(cfg, args.overrides), study


def run_trials(study, cfg, fixed: list[str], storage: str) -> None:
    """Claim and run trials until the budget is spent or this process's wall time is up."""
    from ftpipe.search.study import claim
    from ftpipe.search.trials import run_trial

    started = time.time()
    while cfg.timeout is None or time.time() - started < cfg.timeout:
        trial = claim(study, cfg.n_trials)
        if trial is None:
            break
        state = run_trial(study, trial, cfg, fixed, storage)
        print(f"search: trial {trial.number}: {state.lower()}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        cfg, params, name = configure(args)
        from ftpipe.search.promote import Promotion, promote
        from ftpipe.search.report import write_report
        from ftpipe.search.study import INTERRUPTED_ATTR, open_study, reap_interrupted, storage_spec

        storage = storage_spec(name, args.storage)
        study = open_study(cfg, name, storage)
        reaped = reap_interrupted(study)
        if reaped:
            print(f"search: interrupted trial(s) {', '.join(map(str, reaped))}: marked failed, their params run next", flush=True)
        run_trials(study, cfg, args.overrides, storage)
        if args.no_promote:
            return
        promotion = promote(study, args.overrides, cfg.seeds, cfg.baseline, params) if cfg.seeds else Promotion("not promoted")
        interrupted = sum(bool(t.user_attrs.get(INTERRUPTED_ATTR)) for t in study.get_trials(deepcopy=False))
        report = write_report(study, cfg, promotion, interrupted)
        print(f"search: {promotion.verdict} ({report})", flush=True)
    except FtpipeError as err:  # a bad config, option, storage or study: one line, before any trial
        fail(err)


if __name__ == "__main__":
    main()
