"""The one rule for the keys the tool keeps under a prefix, and the retry rule every S3 request follows."""

from __future__ import annotations

import pytest

from uploader.s3 import client as s3_client
from uploader.s3.own_keys import is_tool_key


@pytest.mark.parametrize(("key", "prefix", "own"), [
    ("lung/.cartload-uploader/runs/abc.json", "lung", True),  # a lease
    ("lung/.cartload-uploader-write-check", "lung/", True),  # the write check
    ("lung/.cartload-uploader/anything/else", "lung", True),
    ("lung/sample-1/.cartload-uploader/runs/x.json", "lung/sample-1/", True),
    ("lung/genes_all.pmtiles", "lung", False),
    ("lung/cartload-uploader/x.tsv", "lung", False),
    (".cartload-uploader-data/lung/genes.tsv", ".cartload-uploader-data/lung", False),  # the user's own prefix
    (".cartload-uploader/runs/x.json", "", True),  # no prefix
])
def test_a_tool_key_is_any_part_below_the_prefix_starting_with_the_mark(key, prefix, own):
    assert is_tool_key(key, prefix) is own


class Response:
    def __init__(self, status: int) -> None:
        self.status_code = status


def test_an_outage_is_ridden_for_the_stall_timeout_and_then_given_up(monkeypatch):
    import botocore.exceptions as bx

    clock = [100.0]
    monkeypatch.setattr(s3_client.time, "monotonic", lambda: clock[0])
    ride = s3_client.RideThroughOutages(within=20)
    request: dict = {"context": {}}
    refused = bx.EndpointConnectionError(endpoint_url="http://store")
    ride(request, 1, response=(Response(200), {}))  # the store answered once
    assert ride(request, 1, caught_exception=refused) is not None
    clock[0] += 19
    assert ride(request, 5, caught_exception=refused) is not None
    clock[0] += 2
    assert ride(request, 6, caught_exception=refused) is None  # 21 s since its first failure
    assert ride({"context": {}}, 1, response=(Response(501), {"Error": {"Code": "NotImplemented"}})) is None
    assert ride({"context": {}}, 1, response=(Response(403), {"Error": {"Code": "AccessDenied"}})) is None
    assert ride({"context": {}}, 1, response=(Response(503), {"Error": {"Code": "SlowDown"}})) is not None
    ride.stop()
    assert ride({"context": {}}, 1, caught_exception=refused) is None  # interrupted: nothing more


def test_a_store_that_never_answered_is_given_first_contact_seconds(monkeypatch):
    import botocore.exceptions as bx

    clock = [0.0]
    monkeypatch.setattr(s3_client.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(s3_client, "FIRST_CONTACT_SECONDS", 10.0)
    ride = s3_client.RideThroughOutages(within=120)
    request: dict = {"context": {}}
    refused = bx.EndpointConnectionError(endpoint_url="http://store")
    assert ride(request, 1, caught_exception=refused) is not None
    clock[0] = 11
    assert ride(request, 4, caught_exception=refused) is None
