"""ftpipe-search's parts: the search config and space (space), the Optuna study and its budget (study), a trial
as a DVC experiment (trials), promotion over seeds (promote) and reports/search.md (report)."""
