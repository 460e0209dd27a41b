"""Validate docker-compose.test.yml against the compose specification's JSON schema (no Docker here).

The schema comes from the docker-compose 1.29.2 wheel on PyPI (compose/config/compose_spec.json),
fetched once into the cache directory given as the first argument.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]


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
    assert ":" in services["minio"]["image"] and not services["minio"]["image"].endswith(":latest")
    print("container check: ok: docker-compose.test.yml matches the compose specification", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
