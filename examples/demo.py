#!/usr/bin/env python3
"""The main job on the built-in local target: upload examples/ to a local S3 server and a local Zenodo.

Run by `make demo`. Starts a throw-away SeaweedFS and the mock Zenodo API on
127.0.0.1 and runs the real command line (entrypoint.py upload_aws) twice.
The bucket starts as new buckets are: private, with a CORS rule for some
other web site only. The first run uploads, prints the viewer link, and
reports that the viewer cannot read the dataset yet, with the exact fix.
The second run, with --setup-viewer-access, uploads nothing again, merges
the viewer's CORS rule and a public read of the dataset prefix into the
bucket's own settings, and the same check passes. Then it lists what landed
in the bucket, uploads the same dataset into a new (mock) Zenodo deposition
and shows the draft.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.mock_zenodo import serve as serve_mock_zenodo  # noqa: E402
from tests.servers import ADMIN, SeaweedFS  # noqa: E402

DATASET = REPO / "examples" / "humanlung-demo"
BUCKET = "cartload-demo"


def run(args: list[str], env: dict[str, str]) -> float:
    shown = [arg.replace(str(REPO) + "/", "") for arg in args]
    print(f"\n$ {shlex.join(['python', *shown[1:]])}", flush=True)
    started = time.monotonic()
    code = subprocess.call(args, env=env, cwd=REPO)
    if code != 0:
        sys.exit(f"demo failed: the uploader exited with {code}")
    return time.monotonic() - started


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cartload-demo-") as workdir:
        # A copy: a successful run writes cartloader's marker files into the dataset directory, and the
        # example in the repository must stay as committed (the tests copy it).
        dataset = Path(workdir) / DATASET.name
        shutil.copytree(DATASET, dataset)
        print("starting a local S3 server (SeaweedFS) on 127.0.0.1 ...", flush=True)
        with SeaweedFS(Path(workdir) / "seaweedfs") as server:
            client = server.client()
            client.create_bucket(Bucket=BUCKET)
            # A lab's existing rule for another web site: SeaweedFS answers CORS for any origin until a
            # bucket has a rule (AWS answers none), so this makes the bucket behave like a real one.
            client.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [
                {"ID": "lab-intranet", "AllowedOrigins": ["https://intranet.lab.example.org"],
                 "AllowedMethods": ["GET"], "AllowedHeaders": ["*"]}]})
            env = os.environ | {
                "AWS_ACCESS_KEY_ID": ADMIN.access_key,
                "AWS_SECRET_ACCESS_KEY": ADMIN.secret_key,
                "AWS_ENDPOINT_URL_S3": server.endpoint_url,
                "AWS_EC2_METADATA_DISABLED": "true",
                "CARTLOAD_UPLOADER_CACHE_DIR": str(Path(workdir) / "cache"),
            }
            print(f"S3 endpoint {server.endpoint_url}, bucket s3://{BUCKET} (private; one CORS rule, for"
                  " https://intranet.lab.example.org)")
            command = [sys.executable, str(REPO / "entrypoint.py"), "upload_aws", "--in-dir", str(dataset),
                       "--s3-dir", f"s3://{BUCKET}/humanlung-demo"]
            first = run(command, env)
            print("\nThe upload is safe, but the viewer cannot read it yet. Let the tool add what is missing:")
            second = run([*command, "--setup-viewer-access"], env)

            print(f"\nThe bucket's CORS rules now (the lab's rule kept): "
                  f"{[rule.get('ID') for rule in client.get_bucket_cors(Bucket=BUCKET)['CORSRules']]}")
            policy = json.loads(client.get_bucket_policy(Bucket=BUCKET)["Policy"])
            print(f"The bucket policy now: {json.dumps(policy['Statement'])}")

            print(f"\nWhat is in s3://{BUCKET}/humanlung-demo/ now:")
            listing = client.list_objects_v2(Bucket=BUCKET, Prefix="humanlung-demo/")["Contents"]
            for item in listing:
                head = client.head_object(Bucket=BUCKET, Key=item["Key"])
                print(f"  {item['Size']:>8,d}  {head['ContentType']:<27} "
                      f"sha256={head['Metadata'].get('sha256', '?')[:12]}...  {item['Key']}")
            local = sorted(p.name for p in dataset.iterdir() if p.is_file())
            uploaded = {item["Key"].split("/", 1)[1] for item in listing}
            print(f"\n{len(uploaded)} objects; not uploaded (not named by the catalog: pipeline intermediates and"
                  f" cartloader's marker files): {', '.join(name for name in local if name not in uploaded)}, tmp/")
            print(f"first run {first:.1f} s, second run {second:.1f} s (nothing to upload)")
            demo_zenodo(Path(workdir), dataset, env)


def demo_zenodo(workdir: Path, dataset: Path, env: dict[str, str]) -> None:
    token = "demo-token-not-a-real-one"
    mock = serve_mock_zenodo(tokens=[token])
    api = f"http://127.0.0.1:{mock.server_port}/api"
    token_file = workdir / "zenodo-token.txt"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)  # a token file readable by others gets a warning, as ssh does for keys
    print(f"\nmock Zenodo API at {api}")
    run([sys.executable, str(REPO / "entrypoint.py"), "upload_zenodo", "--in-dir", str(dataset),
         "--zenodo-token", str(token_file), "--zenodo-url", api, "--title", "Human lung cancer FFPE (demo)",
         "--creators", "Doe, Jane", "--description", "cartload demo dataset"], env)
    import requests

    headers = {"Authorization": f"Bearer {token}"}
    deposition = requests.get(f"{api}/deposit/depositions", headers=headers, timeout=30).json()[0]
    print(f"\nDeposition {deposition['id']} (draft, not published): {len(deposition['files'])} files, e.g.")
    for item in deposition["files"][:3]:
        print(f"  {item['filesize']:>8,d}  md5={item['checksum']}  {item['filename']}")
    mock.shutdown()


if __name__ == "__main__":
    main()
