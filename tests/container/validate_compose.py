"""Check docker-compose.test.yml as far as can be done here (no Docker, no registry, no MinIO).

1. it matches the compose specification's JSON schema (from the docker-compose 1.29.2 wheel on PyPI,
   compose/config/compose_spec.json, fetched once into the cache directory given as the first argument);
2. the MinIO images are quay.io's, pinned by release tag; the services wait for each other as they must;
3. the init service's script runs here, each `mc` step done against the local S3 server by a stand-in
   (tests/container/mc_standin.py): it succeeds, succeeds again, and when any step fails the script
   fails at that step (no `|| true` turning a failed setup into a green start).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def schema(cache: Path) -> dict:
    wheels = sorted(cache.glob("docker_compose-1.29.2-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(cache),
                        "docker-compose==1.29.2"], check=True)
        wheels = sorted(cache.glob("docker_compose-1.29.2-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        return json.loads(wheel.read("compose/config/compose_spec.json"))


def main(cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    document = yaml.safe_load((REPO / "docker-compose.test.yml").read_text())
    jsonschema.validate(document, schema(cache))
    services = document["services"]
    assert services["tests"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    for name in ("minio", "minio-init"):
        image = services[name]["image"]
        repository, _, tag = image.partition(":")
        assert repository in ("quay.io/minio/minio", "quay.io/minio/mc"), image
        assert tag.startswith("RELEASE."), f"{image}: pin a release tag"
    print("container check: ok: docker-compose.test.yml matches the compose specification;"
          " MinIO images from quay.io, pinned", flush=True)
    check_init_script(services["minio-init"])


def check_init_script(service: dict) -> None:
    from tests.servers import SeaweedFS

    entrypoint, script = service["entrypoint"], "\n".join(service["command"])
    assert entrypoint[:2] == ["/bin/sh", "-ec"], f"the init script must stop at a failed step: {entrypoint}"
    assert "|| true" not in script and "||true" not in script, "the init script hides a failure"
    steps = [shlex.split(line) for line in script.splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as work, SeaweedFS(Path(work) / "s3") as server:
        bin_dir = Path(work) / "bin"
        bin_dir.mkdir()
        calls = Path(work) / "calls"
        standin = Path(__file__).with_name("mc_standin.py")
        (bin_dir / "mc").write_text(f'#!/bin/sh\necho "$*" >>{calls}\n'
                                    f'exec {shlex.quote(sys.executable)} {shlex.quote(str(standin))} "$@"\n')
        (bin_dir / "mc").chmod(0o755)
        env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", MC_STANDIN_ENDPOINT=server.endpoint_url,
                   MC_STANDIN_STATE=str(Path(work) / "aliases.json"))

        def run(fail: str = "") -> subprocess.CompletedProcess[str]:
            calls.write_text("")
            return subprocess.run([*entrypoint, script], env=env | {"MC_STANDIN_FAIL": fail}, capture_output=True,
                                  text=True, timeout=120)

        done = run()
        assert done.returncode == 0, done.stderr
        bucket = next(word.split("/", 1)[1] for step in steps if step[:2] == ["mc", "mb"] for word in step[2:]
                      if "/" in word)
        assert bucket in {b["Name"] for b in server.client().list_buckets()["Buckets"]}
        assert run().returncode == 0, "the init script fails when run a second time"
        print(f"container check: ok: the MinIO init script creates {bucket} and the read-only user (stand-in mc"
              " against the local S3 server), twice", flush=True)
        for index, step in enumerate(steps):
            command = " ".join(w for w in step[1:4] if not w.startswith("-")).split(" local")[0]
            done = run(fail=command)
            ran = calls.read_text().splitlines()
            assert done.returncode != 0 and len(ran) == index + 1, (command, done.returncode, ran)
        print(f"container check: ok: the init script fails at whichever of its {len(steps)} steps fails", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
