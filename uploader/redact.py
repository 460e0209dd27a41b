"""Secrets that can hide in text a user typed: `https://user:secret@host` in an endpoint URL.

Every line the tool prints or writes that repeats a command line or an
endpoint passes through `redact`, so the user-info part of a URL never
reaches output, logs or reports.
"""

from __future__ import annotations

import re

_USER_INFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redact(text: str) -> str:
    """The text with the user-info part of every URL in it replaced by '****'."""
    return _USER_INFO.sub(lambda match: f"{match['scheme']}****@", text)
