"""cartloader's pipeline, unchanged, publishing through us: the exact upload command lines its code generates.

tests/cartloader_commands.json holds those lines as cartloader's code printed them (with the
commit they came from). Each runs here as cartloader runs it, through the shell, with the
`cartloader` stand-in first on PATH (README: "Inside cartloader's pipeline"): for S3 against
the local server, for Zenodo against the mock, and the end state is checked as a user sees it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, MockZenodo, S3Prefix
from tests.s3.test_upload_aws import catalog_files
from tests.zenodo.test_upload_zenodo import catalog_names, md5s, only_deposition

pytestmark = pytest.mark.e2e

FIXTURE = json.loads((Path(__file__).parents[1] / "cartloader_commands.json").read_text())
LINES = {command["id"]: command["line"] for command in FIXTURE["commands"]}
OPTIONAL_AND_BASEMAP = {"t18-f24-umap.tsv.gz", "t18-f24.umap.png", "t18-f24.umap.single.prob.png",
                        "t18-f24-umap.pmtiles", "t18-f24-alias.tsv", "histology.pmtiles"}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The pipeline's --out-dir, whose cartload2/ holds the dataset (as run_xenium and run_visiumhd lay it out)."""
    out = tmp_path / "out"
    shutil.copytree(EXAMPLE, out / "cartload2")
    return out


@pytest.fixture
def with_stand_in(tmp_path: Path):
    """An environment whose PATH starts with the `cartloader` stand-in, as the README sets it up."""
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    (shim_dir / "cartloader").symlink_to(Path(sys.executable).parent / "cartload-uploader-shim")

    def environment(env: dict[str, str]) -> dict[str, str]:
        return env | {"PATH": f"{shim_dir}{os.pathsep}{env['PATH']}"}

    return environment


def run_line(command_id: str, values: dict[str, str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    line = LINES[command_id]
    for placeholder, value in values.items():
        line = line.replace(placeholder, value)
    assert "@" not in line, line
    completed = subprocess.run(["/bin/sh", "-c", line], env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in completed.stderr, completed.stderr
    return completed


def markers(directory: Path, kind: str) -> set[str]:
    return {path.name for path in directory.iterdir() if path.name.endswith(f".{kind}.done")}


def all_markers(kind: str) -> set[str]:
    return {f"cartload.{kind}.done"} | {f"{name}.{kind}.done" for name in OPTIONAL_AND_BASEMAP}


def assert_published_exactly(s3: S3Prefix, dataset: Path) -> None:
    expected = catalog_files(dataset) | {"catalog.yaml"}
    assert s3.names() == expected
    for name in expected:
        assert s3.get(name) == (dataset / name).read_bytes(), name


def test_the_fixture_names_its_source():
    assert FIXTURE["cartloader"] == "https://github.com/seqscope/cartloader"
    assert len(FIXTURE["commit"]) == 40
    assert all(command["line"].startswith("cartloader upload_") for command in FIXTURE["commands"])


# -- S3 ---------------------------------------------------------------------------------------------


def test_run_xenium_upload_aws_then_its_restart(out, s3, cli_env, with_stand_in):
    env = with_stand_in(cli_env)
    values = {"@OUT@": str(out), "@BUCKET@": s3.bucket, "@PREFIX@": s3.prefix}

    result = run_line("run_xenium-aws", values, env)

    assert result.returncode == 0, result.stderr
    dataset = out / "cartload2"
    assert_published_exactly(s3, dataset)
    assert markers(dataset, "aws") == all_markers("aws")
    assert "note: --aws aws is not needed" in result.stderr

    result = run_line("run_xenium-restart-aws", values, env)  # --restart --n-jobs 256
    assert result.returncode == 0, result.stderr
    assert "21 uploaded" in result.stderr  # every file sent again, as --restart asks
    assert_published_exactly(s3, dataset)


def test_run_visiumhd_upload_aws_with_its_profile(out, s3, cli_env, with_stand_in, s3_server):
    credentials = Path(cli_env["AWS_SHARED_CREDENTIALS_FILE"])
    credentials.write_text(f"[pipeline-profile]\naws_access_key_id = {s3_server.admin.access_key}\n"
                           f"aws_secret_access_key = {s3_server.admin.secret_key}\n")
    env = with_stand_in({k: v for k, v in cli_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})

    result = run_line("run_visiumhd-aws", {"@OUT@": str(out), "@BUCKET@": s3.bucket, "@PREFIX@": s3.prefix,
                                           "@PROFILE@": "pipeline-profile"}, env)

    assert result.returncode == 0, result.stderr
    assert_published_exactly(s3, out / "cartload2")
    assert markers(out / "cartload2", "aws") == all_markers("aws")


def test_stepinator_uploads_group_by_group(out, s3, cli_env, with_stand_in):
    env = with_stand_in(cli_env)
    values = {"@OUT@": str(out), "@BUCKET@": s3.bucket, "@PREFIX@": s3.prefix}
    dataset = out / "cartload2"
    basics = catalog_files(dataset) - OPTIONAL_AND_BASEMAP | {"catalog.yaml"}

    # The catalog names every group's files: it waits (exit 0) until the last group is in place, so the
    # viewer never sees it name a file that is not there yet.
    assert run_line("stepinator-basics", values, env).returncode == 0
    assert s3.names() == basics - {"catalog.yaml"}
    assert markers(dataset, "aws") == {"cartload.aws.done"}

    assert run_line("stepinator-optional", values, env).returncode == 0
    assert s3.names() == (basics | OPTIONAL_AND_BASEMAP) - {"histology.pmtiles", "catalog.yaml"}

    assert run_line("stepinator-basemap", values, env).returncode == 0
    assert_published_exactly(s3, dataset)
    assert markers(dataset, "aws") == all_markers("aws")


# -- Zenodo -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command_id", ["run_xenium-zenodo", "run_visiumhd-zenodo"])
def test_upload_zenodo_into_a_new_deposition(command_id, out, zenodo: MockZenodo, zenodo_env, token_file,
                                             with_stand_in):
    env = with_stand_in(zenodo_env | {"CARTLOAD_UPLOADER_ZENODO_URL": zenodo.api_url})

    result = run_line(command_id, {"@OUT@": str(out), "@TOKEN@": str(token_file)}, env)

    assert result.returncode == 0, result.stderr
    dataset = out / "cartload2"
    deposition = only_deposition(zenodo)
    assert deposition["submitted"] is False  # the pipeline's line asks for no --publish
    metadata = deposition["metadata"]
    assert metadata["title"] == "Human lung demo"
    assert [creator["name"] for creator in metadata["creators"]] == ["Doe, Jane", "Roe, Rick"]
    assert metadata["upload_type"] == "dataset"
    assert metadata["description"] == "No description provided."
    assert zenodo.files(deposition["id"]) == md5s(dataset, catalog_names(dataset))
    assert markers(dataset, "zenodo") == all_markers("zenodo")
    # What run_xenium/run_visiumhd check before their Zenodo step (the histology basemap is an image it imported):
    assert (dataset / "cartload.zenodo.done").exists() and (dataset / "histology.pmtiles.zenodo.done").exists()


def test_run_xenium_restart_into_its_deposition(out, zenodo: MockZenodo, zenodo_env, token_file, with_stand_in):
    env = with_stand_in(zenodo_env | {"CARTLOAD_UPLOADER_ZENODO_URL": zenodo.api_url})
    values = {"@OUT@": str(out), "@TOKEN@": str(token_file)}
    assert run_line("run_xenium-zenodo", values, env).returncode == 0
    deposition_id = only_deposition(zenodo)["id"]
    dataset = out / "cartload2"
    (dataset / "t18-f24-info.tsv").write_text("info, recomputed\n")

    result = run_line("run_xenium-restart-zenodo", values | {"@DEPOSITION@": str(deposition_id)}, env)

    assert result.returncode == 0, result.stderr
    assert only_deposition(zenodo)["id"] == deposition_id  # the same draft, no second one
    assert zenodo.files(deposition_id) == md5s(dataset, catalog_names(dataset))
    assert "21 uploaded" in result.stderr  # --overwrite: every file replaced, as cartloader's --restart means
    assert [c["name"] for c in only_deposition(zenodo)["metadata"]["creators"]] == ["Doe, Jane", "Roe, Rick"]
