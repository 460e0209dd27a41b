"""README.md's "Try it on your machine", run as written: a local S3 server and the mock Zenodo, by hand.

The section's commands are read from README.md itself and run by one bash with job control, as a
reader pastes them into a terminal, with three changes only: free ports for 8333 and 8765 (tests
run side by side), a temporary directory for /tmp, and `pip install -r requirements-dev.txt` left
out (this environment has it). Where the README says to wait for the S3 server's line, the script
waits for that line. The end state is checked as the reader sees it: what each upload printed, the
objects in the bucket, the published deposition, and both servers stopped by `kill %1 %2`.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, base_env
from tests.servers import ADMIN, free_ports, s3_client

pytestmark = pytest.mark.e2e

SECTION = "## Try it on your machine"
WAIT_FOR_S3 = 'until grep -q "^S3 endpoint" {log}; do sleep 0.2; done'


def readme_commands() -> list[str]:
    """The shell lines of the section's code blocks, continuation lines joined."""
    text = (REPO / "README.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```\n(.*?)^```", section, re.S | re.M)
    return [line for block in blocks for line in re.sub(r"\\\n\s*", "", block).splitlines() if line.strip()]


def script(commands: list[str], work: Path, s3_port: int, zenodo_port: int) -> str:
    """The reader's terminal session: the README's lines (the server's line waited for), a pause while the
    test looks at the servers, then `kill %1 %2`."""
    lines = ["set -m"]
    for command in commands:
        if command.startswith("pip install"):
            continue
        command = command.replace("/tmp/", f"{work}/").replace("8333", str(s3_port)).replace("8765", str(zenodo_port))
        if command.startswith("python -m tests.servers s3"):
            lines += [f"{command.removesuffix('&').strip()} > {work}/s3.log 2>&1 &",
                      WAIT_FOR_S3.format(log=f"{work}/s3.log")]
        else:
            lines.append(command)
    pause = [f"touch {work}/looking", f"until [ -e {work}/looked ]; do sleep 0.2; done"]
    return "\n".join([*lines, *pause, "kill %1 %2", "wait"])


def test_the_readme_try_it_commands_upload_to_a_local_s3_and_the_mock_zenodo(tmp_path):
    commands = readme_commands()
    assert [line.split()[:3] for line in commands if line.startswith(("python -m", "cartload-uploader"))] == [
        ["python", "-m", "tests.servers"], ["cartload-uploader", "upload_aws", "--in-dir"],
        ["cartload-uploader", "upload_aws", "--in-dir"], ["python", "-m", "tests.mock_zenodo"],
        ["cartload-uploader", "upload_zenodo", "--in-dir"], ["cartload-uploader", "upload_zenodo", "--in-dir"]]
    s3_port, zenodo_port = free_ports(2)
    env = base_env(tmp_path / "home") | {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}

    session = subprocess.Popen(["bash", "-c", script(commands, tmp_path, s3_port, zenodo_port)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = what_the_servers_hold(tmp_path, s3_port, zenodo_port, session)
    finally:
        (tmp_path / "looked").touch()
        output, _ = session.communicate(timeout=120)

    assert session.returncode == 0, output
    assert "21 uploaded (159.8 KiB), 0 unchanged, 0 failed" in output
    assert "uploaded, but the viewer cannot read it yet: anonymous reads are denied (403)" in output
    assert "0 uploaded (0 B), 21 unchanged, 0 failed" in output
    assert "viewer check passed: the viewer can open the dataset at the link above" in output
    assert f"created deposition 1000001 (http://127.0.0.1:{zenodo_port}/deposit/1000001)" in output
    assert f"published: http://127.0.0.1:{zenodo_port}/records/1000001" in output
    assert "Traceback" not in output
    catalog = (tmp_path / "humanlung-demo" / "catalog.yaml").read_bytes()
    assert seen["keys"] == 21 and seen["anonymous catalog"] == catalog
    assert seen["record"]["state"] == "done" and seen["record"]["files"] == 21
    assert (tmp_path / "zenodo-token.txt").stat().st_mode & 0o077 == 0  # only its owner may read it
    for port in (s3_port, zenodo_port):  # `kill %1 %2` stopped both servers
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=5)


def what_the_servers_hold(work: Path, s3_port: int, zenodo_port: int, session: subprocess.Popen[str]) -> dict:
    """Once the README's commands have run: the bucket's objects, the catalog read anonymously, the record."""
    while not (work / "looking").exists():
        assert session.poll() is None, "the README's commands stopped early"
        time.sleep(0.2)
    client = s3_client(f"http://127.0.0.1:{s3_port}", ADMIN)
    keys = client.list_objects_v2(Bucket="my-bucket", Prefix="humanlung-demo/")["Contents"]
    anonymous = requests.get(f"http://127.0.0.1:{s3_port}/my-bucket/humanlung-demo/catalog.yaml", timeout=10)
    token = (work / "zenodo-token.txt").read_text().strip()
    record = requests.get(f"http://127.0.0.1:{zenodo_port}/api/deposit/depositions/1000001", timeout=10,
                          headers={"Authorization": f"Bearer {token}"}).json()
    return {"keys": len(keys), "anonymous catalog": anonymous.content,
            "record": {"state": record["state"], "files": len(record["files"])}}
