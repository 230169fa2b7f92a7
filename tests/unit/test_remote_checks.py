"""scripts/remote_run.sh stops in seconds, with one line naming what to set, on a runner that could not finish:
no git remote or one it cannot reach, no DVC remote or one whose plugin is missing, a DVC remote that
refuses its credentials or lacks the inputs, a checkpoint folder it cannot write. Each stops before
`dvc exp run`; the full runs are tests/pipeline/test_remote.py."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from importlib.util import find_spec
from pathlib import Path

import pytest

from conftest import REPO, assert_one_line_error, run

# The download stages' outputs as a committed dvc.lock records them: the inputs a runner must pull.
DVC_YAML = """stages:
  download_data: {cmd: "true", outs: [data/raw]}
  download_model: {cmd: "true", outs: [models/base]}
"""
DVC_LOCK = """schema: '2.0'
stages:
  download_data:
    cmd: 'true'
    outs:
    - {path: data/raw, hash: md5, md5: 0123456789abcdef0123456789abcdef, size: 1}
  download_model:
    cmd: 'true'
    outs:
    - {path: models/base, hash: md5, md5: fedcba9876543210fedcba9876543210, size: 1}
"""


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    base = tmp_path_factory.mktemp("runner")
    repo = base / "repo"
    repo.mkdir()
    run("git init -q && git config user.email t@t && git config user.name t && dvc init -q", repo)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "dvc.lock").write_text(DVC_LOCK)
    run(["dvc", "remote", "add", "-d", "store", str(base / "store")], repo)
    (base / "store").mkdir()
    run(["git", "init", "-q", "--bare", str(base / "origin.git")], base)
    run(["git", "remote", "add", "origin", str(base / "origin.git")], repo)
    run("git add -A && git commit -qm init", repo)
    return repo


@pytest.fixture
def runner(clone, tmp_path):
    """A copy of the clone, in a folder whose ../store and ../origin.git are the clone's."""
    repo = tmp_path / "repo"
    shutil.copytree(clone, repo, symlinks=True)
    return repo


def remote_run(repo: Path, **env) -> subprocess.CompletedProcess:
    result = run(["bash", str(REPO / "scripts/remote_run.sh"), "-S", "train.lr=1e-5"], repo, check=False, env=env)
    assert "Running stage" not in result.stdout + result.stderr  # stopped before the pipeline
    return result


def test_no_git_remote(runner):
    run(["git", "remote", "remove", "origin"], runner)
    assert_one_line_error(remote_run(runner), "no git remote 'origin'", "set GIT_REMOTE")
    assert_one_line_error(remote_run(runner, GIT_REMOTE="upstream"), "no git remote 'upstream'")


def test_unreachable_git_remote_names_what_to_set_and_never_prints_a_token(runner):
    run(["git", "remote", "set-url", "origin", "https://someone:s3cret-token@127.0.0.1:9/ftpipe.git"], runner)
    line = assert_one_line_error(remote_run(runner), "git remote 'origin'", "unreachable or refuses", "set GIT_TOKEN")
    assert "s3cret-token" not in line and "https://***@127.0.0.1:9/ftpipe.git" in line


def test_no_dvc_remote(runner):
    run(["dvc", "remote", "remove", "store"], runner)
    assert_one_line_error(remote_run(runner), "no default DVC remote", "dvc remote add --local -d")


@pytest.mark.skipif(find_spec("dvc_s3") is not None, reason="dvc-s3 is installed here")
def test_a_cloud_dvc_remote_without_its_plugin(runner):
    run(["dvc", "remote", "add", "--local", "-d", "cloud", "s3://bucket/ftpipe"], runner)
    assert_one_line_error(remote_run(runner), "DVC remote 'cloud' (s3://bucket/ftpipe) needs dvc-s3", "DVC_PLUGINS=dvc-s3")


def test_a_checkpoint_folder_it_cannot_write(runner, tmp_path):
    (tmp_path / "a-file").write_text("")
    result = remote_run(runner, FTPIPE_CHECKPOINTS=str(tmp_path / "a-file" / "checkpoints"))
    assert_one_line_error(result, "FTPIPE_CHECKPOINTS=", "is not a writable folder")


def test_inputs_missing_from_the_dvc_remote(runner, tmp_path):
    """`dvc pull --allow-missing` alone says "Everything is up to date" here and the run goes on."""
    run(["dvc", "remote", "modify", "--local", "store", "url", str(tmp_path / "gone")], runner)
    assert_one_line_error(remote_run(runner), "dvc pull from DVC remote 'store'", "failed",
                          "a path this machine can read", "dvc push download_data download_model")


class Refuses(http.server.BaseHTTPRequestHandler):
    """A DVC remote over HTTP that wants credentials it is not given."""

    def _refuse(self):
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="dvc"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = _refuse

    def log_message(self, *args):
        pass


def test_a_dvc_remote_that_refuses_its_credentials(runner):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/store"
        run(["dvc", "remote", "modify", "--local", "store", "url", url], runner)
        assert_one_line_error(remote_run(runner), f"dvc pull from DVC remote 'store' ({url}) failed",
                              "dvc remote modify --local store auth basic")
    finally:
        server.shutdown()


def test_git_askpass_answers_with_the_token_from_the_environment():
    askpass = str(REPO / "scripts/git_askpass.sh")
    env = {**os.environ, "GIT_TOKEN": "tok-123"}
    ask = lambda prompt, **extra: subprocess.run([askpass, prompt], env={**env, **extra}, capture_output=True,  # noqa: E731
                                                 text=True, check=True).stdout
    assert ask("Username for 'https://example.com': ") == "x-access-token\n"
    assert ask("Username for 'https://example.com': ", GIT_USERNAME="oauth2") == "oauth2\n"
    assert ask("Password for 'https://x-access-token@example.com': ") == "tok-123\n"
