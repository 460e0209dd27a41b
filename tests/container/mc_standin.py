"""A stand-in for MinIO's `mc`, for running docker-compose.test.yml's init script here (no MinIO, no Docker).

Each command the script uses does its equivalent against the local S3 server (SeaweedFS), and
fails as `mc` would when that does not hold, so the script's own logic (its order, and that a
failed step fails the whole init) is what is tested:

  mc alias set NAME URL USER SECRET     remember NAME; the credentials must be accepted by the server
  mc ready NAME                         the server answers
  mc mb [--ignore-existing] NAME/BUCKET create the bucket (an existing one is an error without the flag)
  mc admin user add NAME USER SECRET    the identity must exist on the server (SeaweedFS's identities
                                        are its configuration: tests/servers.py gives the same ones)
  mc admin policy attach NAME readonly --user USER
                                        that identity may read and list, and may not write

The compose service name in URLs (http://minio:9000) is the local server ($MC_STANDIN_ENDPOINT).
$MC_STANDIN_FAIL names one command ("admin user add", ...) to fail, to see that the script stops.
State (aliases) lives in $MC_STANDIN_STATE.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.servers import S3Credentials, s3_client  # noqa: E402


def fail(message: str) -> int:
    print(f"mc: <ERROR> {message}", file=sys.stderr)
    return 1


def client(alias: dict[str, str], user: str | None = None, secret: str | None = None) -> Any:
    return s3_client(os.environ["MC_STANDIN_ENDPOINT"],
                     S3Credentials(user or alias["user"], secret or alias["secret"]))


def main(argv: list[str]) -> int:
    import botocore.exceptions

    state_file = Path(os.environ["MC_STANDIN_STATE"])
    aliases: dict[str, dict[str, str]] = json.loads(state_file.read_text()) if state_file.exists() else {}
    after_user = argv.index("--user") + 1 if "--user" in argv else -1
    words = [word for i, word in enumerate(argv) if not word.startswith("--") and i != after_user]
    command = " ".join(words[:3] if words[:1] == ["admin"] else words[:2] if words[:1] == ["alias"] else words[:1])
    if os.environ.get("MC_STANDIN_FAIL") == command:
        return fail(f"{command}: failed (injected)")
    try:
        if words[:2] == ["alias", "set"] and len(words) == 6:
            name, _url, user, secret = words[2:]
            client({"user": user, "secret": secret}).list_buckets()  # wrong credentials fail here
            aliases[name] = {"user": user, "secret": secret}
            state_file.write_text(json.dumps(aliases))
        elif words[0] == "ready" and len(words) == 2:
            client(aliases[words[1]]).list_buckets()
        elif words[0] == "mb" and len(words) == 2:
            name, bucket = words[1].split("/", 1)
            s3 = client(aliases[name])
            existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
            if bucket in existing and "--ignore-existing" not in argv:
                return fail(f"Unable to make bucket `{words[1]}`. Your previous request to create the named"
                            " bucket succeeded and you already own it.")
            if bucket not in existing:
                s3.create_bucket(Bucket=bucket)
        elif words[:3] == ["admin", "user", "add"] and len(words) == 6:
            name, user, secret = words[3:]
            bucket = client(aliases[name]).list_buckets()["Buckets"][0]["Name"]
            client(aliases[name], user, secret).list_objects_v2(Bucket=bucket, MaxKeys=1)
        elif words[:3] == ["admin", "policy", "attach"] and len(words) == 5 and "--user" in argv:
            name, policy = words[3:]
            user = argv[argv.index("--user") + 1]
            return attach(aliases[name], policy, user)
        else:
            return fail(f"the stand-in does not know: mc {' '.join(argv)}")
    except KeyError as exc:
        return fail(f"no alias {exc}")
    except botocore.exceptions.ClientError as exc:
        return fail(str(exc))
    return 0


def attach(alias: dict[str, str], policy: str, user: str) -> int:
    """`readonly` on the local server: SeaweedFS's identity of that name may read and list, not write."""
    import botocore.exceptions

    if policy != "readonly":
        return fail(f"the stand-in knows only the readonly policy, not {policy}")
    from tests.servers import READER

    if user != READER.access_key:
        return fail(f"user {user} has no equivalent identity on the local server")
    admin = client(alias)
    bucket = admin.list_buckets()["Buckets"][0]["Name"]
    key = f"mc-standin-{uuid.uuid4().hex}"
    admin.put_object(Bucket=bucket, Key=key, Body=b"x")
    reader = client(alias, READER.access_key, READER.secret_key)
    try:
        reader.get_object(Bucket=bucket, Key=key)["Body"].read()
        reader.list_objects_v2(Bucket=bucket, MaxKeys=1)
        try:
            reader.put_object(Bucket=bucket, Key=key + "-write", Body=b"x")
        except botocore.exceptions.ClientError:
            return 0
        return fail(f"{user} may write: not the readonly policy")
    finally:
        admin.delete_object(Bucket=bucket, Key=key)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
