"""Listing a prefix on the real local S3 server: key ranges listed side by side give exactly one listing."""

from __future__ import annotations

import hashlib

import pytest

from uploader.local.digests import multipart_etag_name
from uploader.s3 import verify
from uploader.s3.writer import PART_SIZE

pytestmark = pytest.mark.e2e


def test_key_ranges_listed_side_by_side_give_every_object_once(s3, monkeypatch):
    expected = [f"{s3.prefix}/f-{n:02d}.tsv" for n in range(10)]
    strangers = [f"{s3.prefix}/a-first", f"{s3.prefix}/f-03.tsv.old", f"{s3.prefix}/f-07a", f"{s3.prefix}/z-last"]
    for key in expected[:7] + strangers:  # three expected files are not there yet
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=key.encode())
    s3.client.put_object(Bucket=s3.bucket, Key=f"{s3.prefix}/.cartload-uploader-write-check", Body=b"x")
    monkeypatch.setattr(verify, "LISTING_PAGE", 3)  # ranges split at f-02, f-05, f-08: four at once, pages of 3

    listed = verify.listed_files(s3.client, s3.bucket, f"{s3.prefix}/", expected)

    assert sorted(listed) == sorted(expected[:7] + strangers)
    for key, remote in listed.items():
        assert remote.size == len(key.encode())
        assert remote.digests == {multipart_etag_name(PART_SIZE): hashlib.md5(key.encode()).hexdigest()}
    assert listed == verify.listed_files(s3.client, s3.bucket, f"{s3.prefix}/")  # one plain listing


def test_each_range_of_a_complete_listing_is_one_request(s3, monkeypatch):
    expected = [f"{s3.prefix}/f-{n:02d}.tsv" for n in range(9)]
    for key in expected:
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=b"x")
    monkeypatch.setattr(verify, "LISTING_PAGE", 3)
    requests = []
    s3.client.meta.events.register("before-parameter-build.s3.ListObjectsV2",
                                   lambda params, **_: requests.append(dict(params)))

    listed = verify.listed_files(s3.client, s3.bucket, f"{s3.prefix}/", expected)

    assert sorted(listed) == expected
    # Split after f-02, f-05 and f-08: each range is one page, and the one after f-08 finds nothing more.
    assert sorted(request.get("StartAfter", "") for request in requests) == [
        "", f"{s3.prefix}/f-02.tsv", f"{s3.prefix}/f-05.tsv", f"{s3.prefix}/f-08.tsv"]
