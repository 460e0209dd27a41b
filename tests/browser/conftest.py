"""The browser the oracle tests open pages in: Chromium, on the viewer's origin served locally.

In CI (CI=true) a missing Chromium fails these tests: `.ci/run` installs it,
so its absence is a broken CI, never a silent skip. Elsewhere they skip
with the reason and the command that installs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.oracle import Browser, chromium, viewer_origin_browser


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if chromium() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no chromium on PATH: .ci/run installs it (apt-get install chromium)")
        pytest.skip("no chromium on PATH: the browser oracle needs it (as root: apt-get install -y chromium;"
                    " or `make test-browser`)")
    with viewer_origin_browser(tmp_path_factory.mktemp("viewer-origin")) as opened:
        yield opened


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The matrix the run measured: each bucket state, what the browser read, and the tool's verdict."""
    from tests.browser.test_viewer_browser import MATRIX

    if not MATRIX:
        return
    terminalreporter.section("viewer check vs a real browser")
    for case, browser, tool, seconds in MATRIX:
        terminalreporter.write_line(f"{case:<66} | browser: {browser:<40} | tool: {tool:<28} | {seconds}")
