"""Run the built image as a user would, against the local S3 server and mock Zenodo (called by check.sh).

The image runs under `buildah run --isolation chroot` as an arbitrary uid with HOME unset and the
data mounted read-only, which is how Singularity/Apptainer and `docker run --user` run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.mock_zenodo import serve  # noqa: E402
from tests.servers import ADMIN, SeaweedFS  # noqa: E402

DATASET = REPO / "examples" / "humanlung-demo"
UID = "4242:4242"  # not the image's own user: any uid must work


def run_image(image: str, args: list[str], env: dict[str, str], mounts: list[str],
              entrypoint: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    inspected = json.loads(subprocess.check_output(["buildah", "inspect", "--type", "image", image], text=True))
    entrypoint = entrypoint or inspected["OCIv1"]["config"]["Entrypoint"]
    container = subprocess.check_output(["buildah", "from", "--quiet", image], text=True).strip()
    try:
        command = ["buildah", "run", "--isolation", "chroot", "--user", UID]
        for name, value in env.items():
            command += ["--env", f"{name}={value}"]
        for mount in mounts:
            command += ["-v", mount]
        # `env -u HOME` then the image's own ENTRYPOINT: HOME unset, as under some HPC schedulers.
        command += [container, "--", "env", "-u", "HOME", *entrypoint, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=600)
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True)


def check(condition: bool, what: str, result: subprocess.CompletedProcess[str] | None = None) -> None:
    if not condition:
        detail = f"\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}" if result else ""
        sys.exit(f"container check FAILED: {what}{detail}")
    print(f"container check: ok: {what}", flush=True)


def main(image: str, version: str) -> None:
    result = run_image(image, ["--version"], {}, [])
    check(result.returncode == 0 and result.stdout == f"cartload-uploader {version}\n", "--version", result)
    result = run_image(image, ["--help"], {}, [])
    check(result.returncode == 0 and "upload_zenodo" in result.stdout, "--help", result)
    for command in ("upload_aws", "upload_zenodo"):  # cartloader's names, as commands of their own
        result = run_image(image, ["--version"], {}, [], entrypoint=[command])
        check(result.returncode == 0 and result.stdout == f"cartload-uploader {version}\n", command, result)

    with tempfile.TemporaryDirectory() as work, SeaweedFS(Path(work) / "s3") as s3:
        client = s3.client()
        client.create_bucket(Bucket="container-check")
        env = {"AWS_ACCESS_KEY_ID": ADMIN.access_key, "AWS_SECRET_ACCESS_KEY": ADMIN.secret_key,
               "AWS_ENDPOINT_URL_S3": s3.endpoint_url, "AWS_EC2_METADATA_DISABLED": "true"}
        result = run_image(image, ["upload_aws", "--in-dir", "/data", "--s3-dir", "s3://container-check/demo"],
                           env, [f"{DATASET}:/data:ro"])
        keys = {o["Key"] for o in client.list_objects_v2(Bucket="container-check").get("Contents", [])}
        check(result.returncode == 0 and len(keys) == 21 and "demo/catalog.yaml" in keys,
              f"upload_aws as uid {UID} with HOME unset: {len(keys)} objects", result)
        check("hash cache off" in result.stderr, "says that the hash cache is off", result)
        check("marker files could not be written" in result.stderr and "Read-only file system" in result.stderr,
              "a read-only /data: uploaded, with one notice about cartloader's marker files", result)

        token = "container-check-token"
        mock = serve(tokens=[token])
        token_file = Path(work) / "zenodo-token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o644)  # readable by the container's uid, like a mounted secret
        result = run_image(image, [
            "upload_zenodo", "--in-dir", "/data", "--zenodo-token", "/run/secrets/zenodo",
            "--zenodo-url", f"http://127.0.0.1:{mock.server_port}/api", "--title", "container check",
            "--creators", "Doe, Jane", "--description", "check", "--publish"],
            {}, [f"{DATASET}:/data:ro", f"{token_file}:/run/secrets/zenodo:ro"])
        check(result.returncode == 0 and "DOI: 10.5072/zenodo." in result.stderr and token not in result.stderr,
              "upload_zenodo --publish with the token as a mounted file", result)
        mock.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
