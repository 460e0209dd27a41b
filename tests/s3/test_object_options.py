"""The object options on the S3 side, no server needed: what a stored object's answers amount to, and the requests.

Requests are caught by botocore's before-send event (tests/s3/test_addressing.py's
answer_locally) and answered locally; what awscrt puts on the wire is in
tests/s3/test_s3_transport.py; the stored objects are in tests/s3/test_upload_aws_options.py.
"""

from __future__ import annotations

import botocore.exceptions
import pytest

from tests.s3.test_addressing import answer_locally, aws_env  # noqa: F401 - aws_env is a fixture
from uploader.errors import UsageError
from uploader.s3.access import FirstWrite
from uploader.s3.backend import S3Backend
from uploader.s3.destination import S3Destination
from uploader.s3.options import (
    ALL_USERS,
    AUTHENTICATED_USERS,
    ObjectOptions,
    canned_acl_of,
    grants_as_params,
    same_kms_key,
    stored_values,
)
from uploader.s3.settings import S3Settings

OWNER = {"ID": "owner-id", "Type": "CanonicalUser"}


def acl(*extra: tuple[dict[str, str], str]) -> dict[str, object]:
    grants = [{"Grantee": OWNER, "Permission": "FULL_CONTROL"}]
    grants += [{"Grantee": grantee, "Permission": permission} for grantee, permission in extra]
    return {"Owner": {"ID": "owner-id"}, "Grants": grants}


ALL = {"Type": "Group", "URI": ALL_USERS}
AUTHENTICATED = {"Type": "Group", "URI": AUTHENTICATED_USERS}
BUCKET_OWNER = {"Type": "CanonicalUser", "ID": "bucket-owner-id"}


@pytest.mark.parametrize(("answer", "wanted", "seen"), [
    (acl(), "private", "private"),
    (acl(), "public-read", "private"),
    (acl((ALL, "READ")), "public-read", "public-read"),
    (acl((ALL, "READ")), "private", "public-read"),
    (acl((ALL, "READ"), (ALL, "WRITE")), "public-read-write", "public-read-write"),
    (acl((AUTHENTICATED, "READ")), "authenticated-read", "authenticated-read"),
    (acl((BUCKET_OWNER, "FULL_CONTROL")), "bucket-owner-full-control", "bucket-owner-full-control"),
    (acl((BUCKET_OWNER, "READ")), "bucket-owner-full-control", "bucket-owner-read"),
    # uploaded by the bucket's owner (or to a bucket without ACLs): these canned ACLs grant nothing more
    (acl(), "bucket-owner-full-control", "bucket-owner-full-control"),
    (acl(), "bucket-owner-read", "bucket-owner-read"),
    (acl((ALL, "READ"), (AUTHENTICATED, "READ")), "public-read", "grants AllUsers READ, AuthenticatedUsers READ"),
])
def test_an_objects_acl_is_read_as_the_canned_acl_it_amounts_to(answer, wanted, seen):
    assert canned_acl_of(answer, wanted) == seen


def test_a_kms_key_given_by_id_is_the_key_s3_shows_by_arn():
    arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd"
    assert same_kms_key(arn, "1234abcd") == "1234abcd"
    assert same_kms_key(arn, arn) == arn
    assert same_kms_key(arn, "5678efgh") == arn
    assert same_kms_key("", "1234abcd") == ""


def test_a_head_is_read_in_the_options_terms():
    head = {"CacheControl": "no-cache", "ServerSideEncryption": "AES256"}
    wanted = {"--cache-control": "max-age=1", "--storage-class": "STANDARD", "--sse": "AES256"}
    assert stored_values(head, wanted) == {"--cache-control": "no-cache", "--storage-class": "STANDARD",
                                           "--sse": "AES256"}  # a HEAD leaves STANDARD out
    assert stored_values({}, {"--cache-control": "x"}) == {"--cache-control": ""}


def test_an_acl_is_given_again_as_grant_headers():
    assert grants_as_params(acl((ALL, "READ"), (ALL, "WRITE"), (BUCKET_OWNER, "FULL_CONTROL"))) == {
        "GrantFullControl": 'id="owner-id", id="bucket-owner-id"', "GrantRead": f'uri="{ALL_USERS}"'}


# -- the requests ---------------------------------------------------------------------------------------


def backend_with(objects: ObjectOptions) -> S3Backend:
    return S3Backend(S3Settings(s3_dir=S3Destination("bucket", "p"), endpoint_url="https://s3.example.org",
                                objects=objects))


REFUSED = {"Error": {"Code": "AccessControlListNotSupported", "Message": "The bucket does not allow ACLs"},
           "ResponseMetadata": {"HTTPStatusCode": 400}}


@pytest.mark.parametrize("operation", ["PutObject", "CreateMultipartUpload"])
def test_object_options_the_store_refuses_stop_the_run_at_the_first_write(operation):
    where = S3Destination("bucket", "p")
    first = FirstWrite(where, S3Settings(s3_dir=where), ObjectOptions({"--acl": "public-read"}))

    refused = first.failure(botocore.exceptions.ClientError(REFUSED, operation))  # type: ignore[arg-type]

    assert isinstance(refused, UsageError)
    assert str(refused) == ("the store refused an upload with --acl public-read (AccessControlListNotSupported:"
                            " The bucket does not allow ACLs); check those options, or leave out what this"
                            " store does not support")


def test_the_request_payer_goes_with_every_request_that_takes_it(aws_env):  # noqa: F811
    backend = backend_with(ObjectOptions({"--request-payer": "requester"}))
    sent = answer_locally(backend.client)
    client, where = backend.client, {"Bucket": "bucket", "Key": "p/k"}

    client.list_objects_v2(Bucket="bucket", Prefix="p/")
    client.head_object(**where)
    client.get_object_acl(**where)
    client.put_object_acl(**where, ACL="public-read")
    client.copy_object(**where, CopySource={"Bucket": "bucket", "Key": "p/k"}, MetadataDirective="REPLACE")
    client.delete_object(**where)
    client.list_multipart_uploads(Bucket="bucket", Prefix="p/")
    client.head_bucket(Bucket="bucket")  # takes none

    payers = [request.headers.get("x-amz-request-payer") for request in sent]
    assert payers == [b"requester"] * 7 + [None]


def test_without_a_request_payer_none_is_sent(aws_env):  # noqa: F811
    backend = backend_with(ObjectOptions())
    sent = answer_locally(backend.client)
    backend.client.head_object(Bucket="bucket", Key="p/k")
    assert "x-amz-request-payer" not in sent[0].headers


def test_after_an_update_an_sse_kms_etag_is_not_taken_for_an_md5(aws_env, tmp_path):  # noqa: F811
    from botocore.stub import Stubber

    from uploader.local.plan import LocalFile
    from uploader.s3.verify import stored_as_headed

    path = tmp_path / "t.tsv"
    path.write_bytes(b"a\tb\n")
    file = LocalFile("t.tsv", path, 4, 0)
    backend = backend_with(ObjectOptions({"--sse": "aws:kms"}))
    head = {"ContentLength": 4, "ETag": '"0123456789abcdef0123456789abcdef"',
            "ContentType": "text/tab-separated-values", "ServerSideEncryption": "aws:kms",
            "Metadata": {"sha256": "f00d"}}
    with Stubber(backend.client) as stub:
        stub.add_response("head_object", head)
        stub.add_response("head_object", {**head, "ServerSideEncryption": "AES256"})
        opaque = stored_as_headed(backend.client, "bucket", "p/t.tsv", file, backend.objects, updated=True)
        with pytest.raises(Exception, match="the store did not keep --sse aws:kms \\(it holds AES256\\)"):
            stored_as_headed(backend.client, "bucket", "p/t.tsv", file, backend.objects, updated=True)

    assert opaque.digests == {"sha256": "f00d"}  # only what the ETag of an SSE-KMS object is not: an MD5
