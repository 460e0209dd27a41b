"""The command line itself: help, version, usage errors and exit codes (no server needed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import uploader
from tests.conftest import ENTRYPOINT, REPO, base_env, run_cli


def run(*args: str, tmp_path) -> tuple[int, str, str]:
    result = run_cli(*args, env=base_env(tmp_path))
    return result.code, result.stdout, result.stderr


def test_version_is_one_parseable_line(tmp_path):
    code, out, _ = run("--version", tmp_path=tmp_path)
    assert code == 0
    assert re.fullmatch(r"cartload-uploader \d+\.\d+\.\d+\n", out)
    assert uploader.__version__ in out


def test_help_lists_commands_exit_codes_and_environment(tmp_path):
    code, out, _ = run("--help", tmp_path=tmp_path)
    assert code == 0
    for text in ("upload_aws", "upload_zenodo", "130", "CARTLOAD_UPLOADER_CACHE_DIR"):
        assert text in out


def test_command_help(tmp_path):
    code, out, _ = run("upload_aws", "--help", tmp_path=tmp_path)
    assert code == 0
    assert "--s3-dir S3URI" in out and "--dry-run" in out


def test_usage_errors_exit_2_with_usage(tmp_path):
    for args in (["frobnicate"], [], ["upload_aws"], ["upload_aws", "--in-dir", "x"]):
        code, _, err = run(*args, tmp_path=tmp_path)
        assert code == 2, args
        assert "Usage:" in err


def test_help_is_fast_because_boto3_is_not_imported(tmp_path):
    code = ("import sys, runpy; sys.argv = ['entrypoint.py', '--help'];"
            "\ntry:\n runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit: pass\n"
            "print('boto3' in sys.modules, 'yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env=base_env(tmp_path)).stdout
    assert out.strip().splitlines()[-1] == "False False"
    assert ENTRYPOINT.exists()


def test_installed_console_script_runs_the_same_cli(tmp_path):
    script = Path(sys.executable).parent / "cartload-uploader"
    assert script.exists(), "pip install . (make test installs it) provides the cartload-uploader command"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=base_env(tmp_path))
    assert out.returncode == 0 and out.stdout == f"cartload-uploader {uploader.__version__}\n"


def test_home_is_the_image_home_only_when_unset_or_root(tmp_path):
    from entrypoint import home_for_any_uid

    image_home = tmp_path / "home-uploader"
    image_home.mkdir()
    assert home_for_any_uid({}, image_home) == str(image_home)  # some schedulers give no HOME
    assert home_for_any_uid({"HOME": "/"}, image_home) == str(image_home)  # docker run --user UID
    assert home_for_any_uid({"HOME": ""}, image_home) == str(image_home)
    assert home_for_any_uid({"HOME": "/home/jane"}, image_home) is None  # Apptainer binds the host's HOME: kept
    assert home_for_any_uid({"HOME": "/"}, tmp_path / "no-such-home") is None  # outside the image: untouched


def test_a_token_file_the_user_cannot_read_says_which_uid_and_the_fix(tmp_path):
    import os
    import shutil
    import tempfile

    shared = Path(tempfile.mkdtemp(prefix="token-", dir="/tmp"))  # traversable by another uid
    shared.chmod(0o755)
    token = shared / "zenodo-token"
    token.write_text("secret-token-value\n")
    token.chmod(0o600)
    args = ["upload_zenodo", "--in-dir", str(REPO / "examples" / "humanlung-demo"), "--zenodo-token", str(token),
            "--zenodo-id", "1", "--dry-run"]
    uid = os.getuid()
    if os.geteuid() == 0:  # root reads every file: become another uid, as a container run with --user is
        os.chown(token, 4343, 4343)
        uid = 4242
    # The modules are loaded first: this Python's own files need not be readable by that uid.
    code = ("import os, sys, runpy, pkgutil, importlib.machinery;"
            "import uploader.cli, uploader.settings, uploader.commands, uploader.zenodo.backend;"
            f"os.geteuid() == 0 and (os.setgroups([]), os.setgid({uid}), os.setuid({uid}));"
            "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    try:
        done = subprocess.run([sys.executable, "-c", code, str(ENTRYPOINT), *args], capture_output=True, text=True,
                              env=base_env(tmp_path), cwd=REPO, timeout=60)
    finally:
        shutil.rmtree(shared)
    line = done.stderr.strip()
    assert done.returncode == 2, line
    assert line.startswith(f"error: --zenodo-token {token}: not readable by uid {uid} ("), line
    assert "mode 600" in line and "--user" in line and "ZENODO_TOKEN" in line
    assert "secret-token-value" not in done.stderr and "Traceback" not in done.stderr
