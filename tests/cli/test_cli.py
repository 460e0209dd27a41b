"""The command line itself: help, version, usage errors and exit codes (no server needed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from docopt import docopt

import uploader
from tests.conftest import ENTRYPOINT, EXAMPLE, REPO, base_env, run_cli
from uploader.cli.main import AWS_USAGE, main


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
    for text in ("upload_aws", "upload_zenodo", "verify_aws", "verify_zenodo", "130", "CARTLOAD_UPLOADER_CACHE_DIR"):
        assert text in out


def test_command_help(tmp_path):
    code, out, _ = run("upload_aws", "--help", tmp_path=tmp_path)
    assert code == 0
    assert "--s3-dir S3URI" in out and "--dry-run" in out
    code, out, _ = run("verify_aws", "--help", tmp_path=tmp_path)
    assert code == 0 and "--no-sign-request" in out and "--deep" in out and "--dry-run" not in out
    code, out, _ = run("verify_zenodo", "--help", tmp_path=tmp_path)
    assert code == 0 and "--zenodo-id ID" in out and "--latest" in out and "  --publish" not in out


AWS = ["upload_aws", "--in-dir", "data", "--s3-dir", "s3://my-bucket/lung"]
ZENODO = ["upload_zenodo", "--in-dir", "data"]

# Every kind of usage mistake, for both commands: the one line that names it, then where the help is.
USAGE_MISTAKES = [
    ([*AWS, "--n-job", "4"], "unknown option --n-job (did you mean --n-jobs?)"),
    (["verify_aws", "--in-dir", "data"], "--s3-dir S3URI is required (Where it is published, s3://BUCKET[/PREFIX])"),
    (["verify_zenodo", "--in-dir", "data"], "--zenodo-id ID is required (The published record"),
    (["verify_aws", "--in-dir", "data", "--s3-dir", "s3://b/p", "--delete"],
     "--delete is an option of upload_aws, not of verify_aws"),
    (["upload_aws", "--in-di", "data", "--s3-dir", "s3://my-bucket/lung"],
     "unknown option --in-di (did you mean --in-dir?)"),
    ([*AWS, "--frobnicate"], "unknown option --frobnicate"),
    ([*AWS, "--title", "T"], "--title is an option of upload_zenodo, not of upload_aws"),
    (["upload_aws", "--in-dir", "data"], "--s3-dir S3URI is required (Destination, s3://BUCKET[/PREFIX])"),
    (["upload_aws", "--s3-dir", "s3://my-bucket/lung"], "--in-dir DIR is required"),
    ([*AWS, "--n-jobs", "4", "--n-jobs", "8"], "--n-jobs is given 2 times (4, 8); give it once"),
    ([*AWS, "--dry-run", "--dry-run"], "--dry-run is given 2 times; give it once"),
    ([*AWS, "--profile"], "--profile needs a value: --profile NAME (AWS profile (default: AWS_PROFILE, else"),
    (["upload_aws", "--in-dir", "--s3-dir", "s3://my-bucket/lung"], "--in-dir needs a value: --in-dir DIR"),
    ([*AWS, "--dry-run=yes"], "--dry-run takes no value (got '--dry-run=yes')"),
    ([*AWS, "extra"], "unexpected argument 'extra' after --s3-dir S3URI: --s3-dir takes one value"),
    ([*AWS, "--", "extra"], "unexpected argument 'extra': every value goes after its option"),
    ([*AWS, "--n-jobs", "many"], "--n-jobs many: must be a whole number from 1 to"),
    (["upload_aws", "--in-dir", "data", "--s3-dir", "my-bucket/lung"], "--s3-dir my-bucket/lung: must look like s3://"),
    ([*ZENODO, "--n-job", "4"], "unknown option --n-job (did you mean --n-jobs?)"),
    ([*ZENODO, "--creator", "Doe, Jane"], "unknown option --creator (did you mean --creators?)"),
    ([*ZENODO, "--s3-dir", "s3://my-bucket/lung"], "--s3-dir is an option of upload_aws, not of upload_zenodo"),
    (["upload_zenodo", "--title", "T"], "--in-dir DIR is required"),
    ([*ZENODO, "--title", "A", "--title", "B"], "--title is given 2 times (A, B); give it once"),
    ([*ZENODO, "--zenodo-token"], "--zenodo-token needs a value: --zenodo-token FILE"),
    ([*ZENODO, "--title", "Human", "lung"], "unexpected argument 'lung' after --title TEXT: --title takes one value"),
    ([*ZENODO, "--n-jobs", "0"], "--n-jobs 0: must be a whole number from 1 to"),
    ([*ZENODO, "--zenodo-id", "abc"], "--zenodo-id abc: must be a whole number"),
    ([*ZENODO, "--zenodo-id", "1", "--upload-method", "everything"], "--upload-method everything: choose one of"),
]


@pytest.mark.parametrize(("argv", "message"), USAGE_MISTAKES, ids=[" ".join(a[3:] or a) for a, _ in USAGE_MISTAKES])
def test_a_usage_mistake_is_one_line_naming_it_then_the_help_exit_2(argv, message, capsys):
    code = main(argv)

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    first, second = err.splitlines()
    assert first.startswith(f"error: {message}"), first
    assert second == f"Run 'cartload-uploader {argv[0]} --help'"


@pytest.mark.parametrize(("argv", "message"), [
    ([], "no command given: use upload_aws, upload_zenodo, verify_aws, verify_zenodo"),
    (["upload_aw"], "unknown command 'upload_aw' (did you mean upload_aws?)"),
    (["frobnicate"], "unknown command 'frobnicate': use upload_aws, upload_zenodo, verify_aws, verify_zenodo"),
    (["--in-dir", "data", "upload_aws"], "unknown option --in-dir before the command: options go after the command"),
    (["--version", "upload_aws"], "--version takes nothing after it"),
])
def test_a_mistake_before_the_command_points_at_the_main_help(argv, message, capsys):
    code = main(argv)

    _, err = capsys.readouterr()
    assert code == 2
    first, second = err.splitlines()
    assert first.startswith(f"error: {message}"), first
    assert second == "Run 'cartload-uploader --help'"


def test_docopt_alone_would_take_an_abbreviated_option_silently():
    # Why read_command_line checks before docopt: docopt matches a prefix of a long option.
    parsed = docopt(AWS_USAGE, argv=[*AWS, "--n-job", "4"])
    assert parsed["--n-jobs"] == "4"


def test_help_is_fast_because_botocore_is_not_imported(tmp_path):
    code = ("import sys, runpy; sys.argv = ['entrypoint.py', '--help'];"
            "\ntry:\n runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit: pass\n"
            "print('botocore' in sys.modules, 'yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env=base_env(tmp_path)).stdout
    assert out.strip().splitlines()[-1] == "False False"
    assert ENTRYPOINT.exists()


def test_installed_console_script_runs_the_same_cli(tmp_path):
    script = Path(sys.executable).parent / "cartload-uploader"
    assert script.exists(), "pip install . (make test installs it) provides the cartload-uploader command"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=base_env(tmp_path))
    assert out.returncode == 0 and out.stdout == f"cartload-uploader {uploader.__version__}\n"


# -- --report is written by every run that read its command line, early failures too ------------------


def broken_catalog(dataset: Path) -> None:
    (dataset / "catalog.yaml").write_text("assets: [unclosed\n")


@pytest.mark.parametrize(("extra", "env", "edit", "status", "error"), [
    ([], {}, None, 3, "no AWS credentials found"),
    ([], {"AWS_ACCESS_KEY_ID": "AKIATEST", "AWS_SECRET_ACCESS_KEY": "secret-key", "AWS_MAX_ATTEMPTS": "1",
      "CARTLOAD_UPLOADER_FIRST_CONTACT_SECONDS": "1"}, None,
     4, "cannot reach"),
    ([], {}, broken_catalog, 2, "catalog is not valid YAML"),
    (["--n-jobs", "lots"], {}, None, 2, "--n-jobs lots: must be a whole number"),
], ids=["no-credentials", "unreachable", "bad-catalog", "bad-value"])
def test_an_early_failure_still_writes_the_report(tmp_path, extra, env, edit, status, error):
    dataset = tmp_path / "data"
    shutil.copytree(EXAMPLE, dataset)
    if edit:
        edit(dataset)
    report = tmp_path / "report.json"
    environment = base_env(tmp_path) | {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1"} | env

    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", "s3://my-bucket/lung", "--report", report,
                     *extra, env=environment)

    assert result.code == status, result.output
    document = json.loads(report.read_text())
    assert document["ok"] is False
    assert document["exit_status"] == status
    assert error in document["error"] and "\n" not in document["error"]
    assert document["error"] in result.stderr
    assert document["files"] == [] and document["totals"]["uploaded"] == 0
    assert "secret-key" not in report.read_text()


def test_an_early_failure_with_report_to_stdout(tmp_path):
    result = run_cli("upload_zenodo", "--in-dir", tmp_path, "--zenodo-id", "1", "--report", "-",
                     env=base_env(tmp_path))

    assert result.code == 2
    document = json.loads(result.stdout)
    assert document["ok"] is False and document["exit_status"] == 2
    assert document["error"].startswith("no Zenodo token")


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
    # The dataset and the working directory too: a fresh clone's directory may be private to its owner.
    dataset = shutil.copytree(REPO / "examples" / "humanlung-demo", shared / "dataset")
    args = ["upload_zenodo", "--in-dir", str(dataset), "--zenodo-token", str(token), "--zenodo-id", "1", "--dry-run"]
    uid = os.getuid()
    if os.geteuid() == 0:  # root reads every file: become another uid, as a container run with --user is
        os.chown(token, 4343, 4343)
        uid = 4242
    # The modules and the entrypoint are read first: this checkout need not be readable by that uid.
    code = ("import os, sys, pkgutil, importlib.machinery;"
            "import uploader.cli.main, uploader.zenodo.settings, uploader.cli.commands, uploader.zenodo.backend;"
            "sys.argv = sys.argv[1:]; entrypoint = compile(open(sys.argv[0]).read(), sys.argv[0], 'exec');"
            f"os.geteuid() == 0 and (os.setgroups([]), os.setgid({uid}), os.setuid({uid}));"
            "exec(entrypoint, {'__name__': '__main__', '__file__': sys.argv[0]})")
    try:
        done = subprocess.run([sys.executable, "-c", code, str(ENTRYPOINT), *args], capture_output=True, text=True,
                              env=base_env(tmp_path), cwd=shared, timeout=60)
    finally:
        shutil.rmtree(shared)
    line = done.stderr.strip()
    assert done.returncode == 2, line
    assert line.startswith(f"error: --zenodo-token {token}: not readable by uid {uid} ("), line
    assert "mode 600" in line and "--user" in line and "ZENODO_TOKEN" in line
    assert "secret-token-value" not in done.stderr and "Traceback" not in done.stderr
