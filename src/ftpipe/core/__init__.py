"""The infrastructure every stage imports: errors and their one line, reading and writing files (io), the
sidecar records, the stage runner, the params schemas (config), the launcher, progress, quiet logs, the
offline switch and inert Markdown. dvc.yaml lists this folder once per stage: a change here reruns them all.
"""
