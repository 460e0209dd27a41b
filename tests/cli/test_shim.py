"""Our commands under cartloader's names: `upload_aws`, `upload_zenodo`, and the optional `cartloader` stand-in.

The stand-in's hand-off is tested with a stub `cartloader` later on PATH that records its
arguments, its process id and an environment variable, and exits with a code of its own:
the real cartloader must get exactly what the pipeline gave, in the same process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import uploader
from tests.conftest import base_env

BIN = Path(sys.executable).parent
STUB = """#!/bin/sh
for word in "$@"; do printf '%s\\0' "$word"; done > "$STUB_LOG"
echo "$$ $PIPELINE_VARIABLE" > "$STUB_LOG.process"
exit 7
"""


@pytest.fixture
def pipeline(tmp_path: Path) -> dict[str, str]:
    """PATH as a user sets it for cartloader's pipeline: the stand-in first, then the real (here: stub) cartloader."""
    shim_dir, real_dir = tmp_path / "shim", tmp_path / "real"
    shim_dir.mkdir()
    real_dir.mkdir()
    (shim_dir / "cartloader").symlink_to(BIN / "cartload-uploader-shim")
    stub = real_dir / "cartloader"
    stub.write_text(STUB)
    stub.chmod(0o755)
    env = base_env(tmp_path)
    return env | {"PATH": f"{shim_dir}{os.pathsep}{real_dir}{os.pathsep}{env['PATH']}",
                  "STUB_LOG": str(tmp_path / "stub.log"), "PIPELINE_VARIABLE": "kept"}


def run(words: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str, str]:
    process = subprocess.Popen(words, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=60)
    return process, out, err


def recorded(env: dict[str, str]) -> tuple[list[str], str]:
    arguments = Path(env["STUB_LOG"]).read_bytes().split(b"\0")[:-1]
    return [a.decode() for a in arguments], Path(env["STUB_LOG"] + ".process").read_text().strip()


@pytest.mark.parametrize("arguments", [
    ["run_xenium", "--out-dir", "out dir/with spaces", "--creators", "Doe, Jane", "Roe, Rick", "--upload-zenodo"],
    ["run_cartload2", "--id", "x;y", "--", "$HOME", "*"],
    ["--help"],
    [],
], ids=["run_xenium", "odd-characters", "help", "no-arguments"])
def test_every_other_subcommand_goes_to_the_real_cartloader_untouched(pipeline, arguments):
    process, _, err = run(["cartloader", *arguments], pipeline)

    assert process.returncode == 7, err  # the real cartloader's own exit status
    got, where = recorded(pipeline)
    assert got == arguments
    pid, variable = where.split(" ", 1)
    assert int(pid) == process.pid  # exec: the same process, so signals reach the real cartloader
    assert variable == "kept"


def test_the_real_cartloader_can_be_named(pipeline, tmp_path):
    elsewhere = tmp_path / "opt" / "cartloader-real"
    elsewhere.parent.mkdir()
    elsewhere.write_text(STUB)
    elsewhere.chmod(0o755)
    path_without_stub = os.pathsep.join(p for p in pipeline["PATH"].split(os.pathsep) if not p.endswith("real"))
    env = pipeline | {"PATH": path_without_stub, "CARTLOADER_REAL": str(elsewhere)}

    process, _, err = run(["cartloader", "sge_convert", "--in-dir", "x"], env)

    assert process.returncode == 7, err
    assert recorded(env)[0] == ["sge_convert", "--in-dir", "x"]


def test_without_a_real_cartloader_its_subcommands_fail_clearly(pipeline):
    env = pipeline | {"PATH": os.pathsep.join(p for p in pipeline["PATH"].split(os.pathsep) if not p.endswith("real"))}

    process, _, err = run(["cartloader", "run_xenium", "--out-dir", "x"], env)

    assert process.returncode == 127
    assert err.startswith("error: 'cartloader run_xenium' is cartloader's own, and no cartloader is installed")
    assert "CARTLOADER_REAL" in err and not Path(pipeline["STUB_LOG"]).exists()


def test_our_two_commands_are_answered_here(pipeline):
    process, out, _ = run(["cartloader", "upload_aws", "--help"], pipeline)
    assert process.returncode == 0 and "Upload a cartload output directory to Amazon S3" in out

    process, _, err = run(["cartloader", "upload_zenodo", "--in-dir", "d", "--creator", "Doe, J"], pipeline)
    assert process.returncode == 2
    assert err.splitlines() == ["error: unknown option --creator (did you mean --creators?)",
                                "Run 'cartloader upload_zenodo --help'"]
    assert not Path(pipeline["STUB_LOG"]).exists()


@pytest.mark.parametrize("command", ["upload_aws", "upload_zenodo"])
def test_the_commands_under_cartloaders_names(command, tmp_path):
    env = base_env(tmp_path)
    version = subprocess.run([BIN / command, "--version"], env=env, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout == f"cartload-uploader {uploader.__version__}\n"

    helped = subprocess.run([BIN / command, "--help"], env=env, capture_output=True, text=True)
    assert helped.returncode == 0 and f"cartload-uploader {command} --in-dir DIR" in helped.stdout

    wrong = subprocess.run([BIN / command, "--in-dir", "d", "--n-job", "4"], env=env, capture_output=True, text=True)
    assert wrong.returncode == 2
    assert wrong.stderr.splitlines() == ["error: unknown option --n-job (did you mean --n-jobs?)",
                                         f"Run '{command} --help'"]


@pytest.mark.parametrize("doc", ["README.md", "docs/pipelines.md"])
def test_the_documented_recipe_sets_up_the_stand_in(tmp_path, doc):
    text = (Path(__file__).resolve().parents[2] / doc).read_text()
    section = text.split("## Inside cartloader's pipeline", 1)[1]
    recipe = section.split("```", 2)[1].strip().splitlines()
    setup = [line.split("  #")[0] for line in recipe if not line.startswith("cartloader ") and not line.startswith(" ")]
    assert setup[0].startswith("mkdir") and setup[1].startswith("ln -sf") and setup[2].startswith("export PATH=")
    env = base_env(tmp_path) | {"HOME": str(tmp_path), "PATH": f"{BIN}{os.pathsep}/usr/bin{os.pathsep}/bin"}

    script = "\n".join([*setup, "command -v cartloader", "cartloader upload_zenodo --version"])
    result = subprocess.run(["/bin/sh", "-ec", script], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{tmp_path}/cartload-shim/cartloader",
                                          f"cartload-uploader {uploader.__version__}"]
