"""The Zenodo client's timing: settings from the environment, the pace of requests, the shared retry budget."""

from __future__ import annotations

import threading
import time
from dataclasses import fields

import pytest

from uploader.cli.main import MAIN_USAGE
from uploader.errors import UsageError
from uploader.zenodo.pacing import ENV_PREFIX, Interrupted, Pacer, RetryBudget, Window, ZenodoTiming


def test_defaults_are_zenodos_documented_limits():
    timing = ZenodoTiming.from_environment({})
    assert timing.rate == (Window(100, 60), Window(5000, 3600)) and timing.search_rate == (Window(30, 60),)
    assert timing.upload_timeout >= 30 * 60 > timing.timeout


def test_every_setting_is_an_environment_variable_listed_in_the_help():
    for spec in fields(ZenodoTiming):
        assert f"{ENV_PREFIX}{spec.name.upper()}=" in MAIN_USAGE, spec.name


def test_settings_are_read_from_the_environment():
    timing = ZenodoTiming.from_environment({
        "CARTLOAD_UPLOADER_ZENODO_TIMEOUT": "2.5", "CARTLOAD_UPLOADER_ZENODO_RETRIES": "3",
        "CARTLOAD_UPLOADER_ZENODO_RATE": "10/1, 100/60", "CARTLOAD_UPLOADER_ZENODO_SEARCH_WAIT": "0"})
    assert (timing.timeout, timing.retries, timing.search_wait) == (2.5, 3, 0.0)
    assert timing.rate == (Window(10, 1), Window(100, 60))


@pytest.mark.parametrize(("name", "value"), [("RATE", "fast"), ("RATE", "10/0"), ("RATE", "0/5"),
                                             ("RETRIES", "1.5"), ("TIMEOUT", "0"), ("BACKOFF", "-1"),
                                             ("SEARCH_RATE", "")])
def test_a_bad_value_is_a_usage_error_naming_the_variable(name, value):
    variable = ENV_PREFIX + name
    if not value:
        assert ZenodoTiming.from_environment({variable: value}) == ZenodoTiming()  # empty: the default
        return
    with pytest.raises(UsageError, match=variable):
        ZenodoTiming.from_environment({variable: value})


def test_retry_after_is_honoured_up_to_max_wait():
    timing = ZenodoTiming(backoff=0.01, max_wait=5)
    assert 2 <= timing.backoff_delay(1, "2") < 2.1
    assert 5 <= timing.backoff_delay(1, "3600") < 5.01
    assert len({timing.backoff_delay(1, "2") for _ in range(20)}) > 1  # not all back at the same moment
    assert timing.backoff_delay(1, "Wed, 21 Oct 2026 07:28:00 GMT") < 0.1  # a date: the backoff
    assert timing.backoff_delay(30) <= 60 * 1.5


def test_the_pacer_keeps_every_window():
    pacer = Pacer((Window(3, 0.3),), (Window(1, 0.5),), slack=0)
    stop = threading.Event()
    started = time.monotonic()
    for _ in range(3):
        pacer.wait_turn(stop)
    assert time.monotonic() - started < 0.1
    pacer.wait_turn(stop)  # the fourth waits for the first to leave the window
    assert time.monotonic() - started >= 0.29

    started = time.monotonic()
    pacer.wait_turn(stop, search=True)
    pacer.wait_turn(stop, search=True)  # searches have their own, stricter window
    assert time.monotonic() - started >= 0.49


def test_a_pause_holds_every_request_and_stop_ends_a_wait():
    pacer = Pacer((Window(100, 1),), (), slack=0)
    stop = threading.Event()
    pacer.pause(0.3)
    started = time.monotonic()
    pacer.wait_turn(stop)
    assert time.monotonic() - started >= 0.29

    pacer.pause(60)
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        pacer.wait_turn(stop)
    assert time.monotonic() - started < 1


def test_the_retry_budget_is_shared_and_earned_back_slowly():
    budget = RetryBudget(2)
    assert budget.spend() and budget.spend() and not budget.spend()
    for _ in range(9):
        budget.earn()
    assert not budget.spend()
    budget.earn()
    assert budget.spend() and not budget.spend()
    for _ in range(100):
        budget.earn()
    assert budget.spend() and budget.spend() and not budget.spend()  # never more than it started with
