"""Write access is what the run's first write proves: a refusal of it is one line, at once, and leaves nothing.

End to end against the real local S3 server: its read-only identity, and
our proxy answering some requests as a store that refuses them would (the
request's head decides: a part, a request carrying Content-MD5).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import S3Prefix, S3Server, run_cli
from tests.proxy import Proxy

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                 b"<Message>Access Denied</Message></Error>")
NOT_IMPLEMENTED = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code>'
                   b"<Message>Content-MD5 is not supported</Message></Error>")


def a_dataset(root: Path, *sizes: int) -> Path:
    root.mkdir(parents=True)
    names = [f"table-{index}.tsv" for index in range(len(sizes))]
    for name, size in zip(names, sizes, strict=True):
        (root / name).write_bytes(os.urandom(size))
    (root / "catalog.yaml").write_text("id: access\nassets:\n  tables:\n" + "".join(f"    - {n}\n" for n in names))
    return root


@pytest.fixture
def refusing(s3_server: S3Server) -> Iterator[Proxy]:
    with Proxy(int(s3_server.endpoint_url.rsplit(":", 1)[1])) as proxy:
        yield proxy


def refuse(proxy: Proxy, when: Callable[[bytes], bool], status: int, body: bytes) -> dict[str, str]:
    proxy.set(refuse_when=when, refusal=(status, body))
    return {"AWS_ENDPOINT_URL_S3": proxy.url}


def is_part(head: bytes) -> bool:
    return b"partNumber=" in head.split(b"\r\n", 1)[0]


def carries_md5(head: bytes) -> bool:
    return b"\r\ncontent-md5:" in head.lower()


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def assert_nothing_left(s3: S3Prefix) -> None:
    assert s3.all_names() == set()  # no object, no lease
    assert s3.multipart_uploads() == []


def denied(s3: S3Prefix) -> str:
    return (f"error: access denied for writing under {s3.uri}: these credentials may not do this; ask the bucket"
            " owner for s3:ListBucket and s3:PutObject on it")


@pytest.mark.identities
@pytest.mark.parametrize("sizes", [(8 * 1024, 8 * 1024), (9 * MiB,)], ids=["first PUT", "first multipart upload"])
def test_a_read_only_identity_is_refused_at_its_first_write(tmp_path, s3, cli_env, s3_server, sizes):
    if s3_server.reader is None:
        pytest.fail("this S3 server has no read-only identity: set S3_READER_ACCESS_KEY_ID/S3_READER_SECRET_ACCESS_KEY")
    data = a_dataset(tmp_path / "data", *sizes)
    env = cli_env | {"AWS_ACCESS_KEY_ID": s3_server.reader.access_key,
                     "AWS_SECRET_ACCESS_KEY": s3_server.reader.secret_key}

    result = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri, env=env)

    assert result.code == 3, result.output
    assert errors(result.stderr) == [denied(s3)]
    assert_nothing_left(s3)


def test_access_denied_at_the_first_part_stops_the_run_and_leaves_no_upload(tmp_path, s3, cli_env, refusing):
    data = a_dataset(tmp_path / "data", 20 * MiB, 12 * MiB)
    env = cli_env | refuse(refusing, is_part, 403, ACCESS_DENIED)

    result = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri, env=env)

    assert result.code == 3, result.output
    assert errors(result.stderr) == [denied(s3)]
    assert_nothing_left(s3)


@pytest.mark.parametrize(("sizes", "what"), [((8 * 1024,), "an upload"), ((9 * MiB,), "a part")])
def test_a_store_that_refuses_content_md5_is_told_in_one_line_at_the_first_write(tmp_path, s3, cli_env, refusing,
                                                                                 sizes, what):
    data = a_dataset(tmp_path / "data", *sizes)
    env = cli_env | refuse(refusing, carries_md5, 501, NOT_IMPLEMENTED)

    result = run_cli("upload_aws", "--in-dir", data, "--s3-dir", s3.uri, env=env)

    assert result.code == 4, result.output
    assert errors(result.stderr) == [
        f"error: the store refused {what} carrying a Content-MD5 header (NotImplemented: Content-MD5 is not"
        " supported); every part this tool sends carries one, so that the store rejects corrupted bytes, so it"
        " cannot upload here: use a store that checks Content-MD5 (AWS S3, MinIO and SeaweedFS do)"]
    assert_nothing_left(s3)


def test_a_run_removes_old_write_check_uploads_and_leaves_a_fresh_one(dataset, s3, cli_env):
    """Older versions checked write access with an upload of their own, which a killed run left behind."""
    key = f"{s3.prefix}/.cartload-uploader-write-check"

    def left_behind() -> str:
        upload = s3.client.create_multipart_upload(Bucket=s3.bucket, Key=key)["UploadId"]
        s3.client.upload_part(Bucket=s3.bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"write check\n")
        return str(upload)

    first = left_behind()
    assert run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri, env=cli_env).code == 0
    assert [upload["UploadId"] for upload in s3.multipart_uploads()] == [first]  # seconds old: a live run's, maybe

    second = left_behind()
    result = run_cli("upload_aws", "--in-dir", dataset, "--s3-dir", s3.uri,
                     env=cli_env | {"CARTLOAD_UPLOADER_WRITE_CHECK_STALE": "0"})  # a no-op re-run: nothing written

    assert result.code == 0, result.output
    assert s3.multipart_uploads() == []
    assert second and ".cartload-uploader-write-check" not in result.output
    assert ".cartload-uploader-write-check" not in s3.all_names()
