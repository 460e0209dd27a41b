"""Options into settings: the values a user gives, read the way they meant them (no server needed)."""

from __future__ import annotations

import logging

import pytest

from uploader.errors import InputError
from uploader.settings import read_zenodo_token

TOKEN = "Zq3kR8vWm2NbT5xY7cJ9hLpA4sD6fG1e"


def token_file(tmp_path, content: bytes, mode: int = 0o600):
    path = tmp_path / "zenodo-token"
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("content", [
    TOKEN.encode(),
    f"{TOKEN}\n".encode(),
    f"\ufeff{TOKEN}\r\n".encode(),  # Notepad: a byte-order mark and CRLF
    f"  {TOKEN}  \n\n".encode(),
    f"\n\t{TOKEN}\r\n  \r\n".encode(),
], ids=["bare", "newline", "bom-crlf", "spaces", "blank-lines-around"])
def test_a_token_file_is_read_as_the_token_alone(tmp_path, content):
    assert read_zenodo_token(str(token_file(tmp_path, content))) == TOKEN


def test_a_token_file_with_two_lines_is_refused_without_showing_them(tmp_path):
    path = token_file(tmp_path, f"{TOKEN}\nsecond-secret-line\n".encode())

    with pytest.raises(InputError) as refused:
        read_zenodo_token(str(path))

    message = str(refused.value)
    assert message == f"--zenodo-token {path}: holds 2 non-empty lines; put only the token in it, on one line"
    assert TOKEN not in message and "second-secret-line" not in message


def test_a_token_with_spaces_inside_is_refused_without_showing_it(tmp_path):
    path = token_file(tmp_path, f"token: {TOKEN}\n".encode())
    with pytest.raises(InputError) as refused:
        read_zenodo_token(str(path))
    assert "contains spaces" in str(refused.value) and TOKEN not in str(refused.value)


def test_a_token_file_others_can_read_gets_a_warning_never_the_token(tmp_path, caplog):
    path = token_file(tmp_path, f"{TOKEN}\n".encode(), mode=0o644)

    with caplog.at_level(logging.WARNING, logger="uploader"):
        assert read_zenodo_token(str(path)) == TOKEN

    assert [record.getMessage() for record in caplog.records] == [
        f"warning: --zenodo-token {path} is readable by other users (mode 0644); make it private: chmod 600 {path}"]
    assert TOKEN not in caplog.text


def test_a_private_token_file_gets_no_warning(tmp_path, caplog):
    path = token_file(tmp_path, f"{TOKEN}\n".encode(), mode=0o600)
    with caplog.at_level(logging.WARNING, logger="uploader"):
        read_zenodo_token(str(path))
    assert caplog.records == []


def test_the_environment_variable_is_read_the_same_way(monkeypatch):
    monkeypatch.setenv("ZENODO_TOKEN", f"  {TOKEN}\r\n")
    assert read_zenodo_token(None) == TOKEN
    monkeypatch.setenv("ZENODO_TOKEN", f"{TOKEN}\nother")
    with pytest.raises(InputError, match="ZENODO_TOKEN: holds 2 non-empty lines"):
        read_zenodo_token(None)
