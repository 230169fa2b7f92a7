#!/bin/sh
# GIT_ASKPASS for an HTTPS git remote (scripts/remote_run.sh sets it when GIT_TOKEN is set): git and DVC
# call it with their prompt; the token comes from the environment and is never written to a file.
case "$1" in
    Username*) printf '%s\n' "${GIT_USERNAME:-x-access-token}" ;;  # GitHub's name for a token; GitLab: oauth2
    *) printf '%s\n' "$GIT_TOKEN" ;;
esac
