"""Options into settings: the values a user gives, read the way they meant them (no server needed)."""

from __future__ import annotations

import logging
import re

import pytest

from uploader.cli.command_line import read_command_line, spread_multi_values
from uploader.cli.main import SPECS, aws_settings, zenodo_settings
from uploader.engine.settings import RunSettings
from uploader.errors import InputError, UsageError
from uploader.s3.settings import S3Settings
from uploader.zenodo.records import ZenodoToken
from uploader.zenodo.settings import ZenodoSettings, read_zenodo_token

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


# -- cartloader's command lines read as cartloader means them -------------------------------------------


def zenodo_run_of(words: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[RunSettings, ZenodoSettings]:
    monkeypatch.setenv("ZENODO_TOKEN", TOKEN)
    return zenodo_settings(read_command_line(SPECS["upload_zenodo"], words))


def zenodo_settings_of(words: list[str], monkeypatch: pytest.MonkeyPatch) -> ZenodoSettings:
    return zenodo_run_of(words, monkeypatch)[1]


def aws_run_of(words: list[str]) -> tuple[RunSettings, S3Settings]:
    return aws_settings(read_command_line(SPECS["upload_aws"], ["--in-dir", "d", "--s3-dir", "s3://bucket/x", *words]))


def aws_settings_of(words: list[str]) -> S3Settings:
    return aws_run_of(words)[1]


@pytest.mark.parametrize("words", [
    ["--in-dir", "d", "--title", "Lung", "--creators", "Doe, Jane", "Roe, Rick"],  # run_xenium's own line
    ["--in-dir", "d", "--creators", "Doe, Jane", "Roe, Rick", "--title", "Lung"],
    ["--in-dir", "d", "--title", "Lung", "--creators", "Doe, Jane", "--creators", "Roe, Rick"],
    ["--in-dir", "d", "--title", "Lung", "--creators=Doe, Jane", "Roe, Rick"],
    ["--in-dir", "d", "--title", "Lung", "--creators", "Doe, Jane; Roe, Rick"],
], ids=["after-one-flag", "before-other-options", "repeated", "equals-form", "semicolon"])
def test_every_creator_is_kept(words, monkeypatch):
    settings = zenodo_settings_of(words, monkeypatch)
    assert settings.metadata["creators"] == [{"name": "Doe, Jane"}, {"name": "Roe, Rick"}]


def test_creators_then_files_stay_apart(monkeypatch):
    settings = zenodo_settings_of(["--in-dir", "d", "--upload-method", "files", "--title", "Lung",
                                   "--creators", "Doe, Jane", "Roe, Rick", "--files", "a.tsv", "b.pmtiles", "c.png"],
                                  monkeypatch)
    assert settings.metadata["creators"] == [{"name": "Doe, Jane"}, {"name": "Roe, Rick"}]
    assert settings.files.names == ("a.tsv", "b.pmtiles", "c.png")


def test_spreading_several_values_into_repeated_options():
    multi = frozenset({"--creators", "--files"})
    assert spread_multi_values(["--creators", "A", "B", "--title", "T", "--files", "x", "y", "z"], multi) == [
        "--creators", "A", "--creators", "B", "--title", "T", "--files", "x", "--files", "y", "--files", "z"]
    assert spread_multi_values(["--files=x", "y"], multi) == ["--files=x", "--files", "y"]
    assert spread_multi_values(["--title", "T", "stray"], multi) == ["--title", "T", "stray"]
    assert spread_multi_values(["--files", "x", "--", "y"], multi) == ["--files", "x", "--", "y"]


def test_absolute_files_directly_inside_in_dir_are_their_names(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    settings = zenodo_settings_of(["--in-dir", str(data), "--zenodo-id", "1", "--upload-method", "files",
                                   "--files", str(data / "a.tsv"), "b.tsv"], monkeypatch)
    assert settings.files.names == ("a.tsv", "b.tsv")


@pytest.mark.parametrize("where", ["elsewhere/a.tsv", "data/sub/a.tsv"])
def test_absolute_files_elsewhere_are_refused(tmp_path, monkeypatch, where):
    (tmp_path / "data").mkdir()
    with pytest.raises(UsageError, match=f"--files {tmp_path / where}: not directly inside --in-dir"):
        zenodo_settings_of(["--in-dir", str(tmp_path / "data"), "--zenodo-id", "1", "--upload-method", "files",
                            "--files", str(tmp_path / where)], monkeypatch)


@pytest.mark.parametrize("words", [
    ["--upload-method", "user_list", "--in-list", "a.tsv", "b.tsv"],
    ["--in-list", "a.tsv", "b.tsv"],  # user_list was the first upload_zenodo's default
], ids=["user_list", "in-list-alone"])
def test_the_old_user_list_is_files_with_a_note(words, monkeypatch):
    settings = zenodo_settings_of(["--in-dir", "d", "--zenodo-id", "1", *words], monkeypatch)
    assert (settings.files.method, settings.files.names) == ("files", ("a.tsv", "b.tsv"))
    assert settings.notes == ("--upload-method user_list --in-list NAME... is cartloader's old spelling of"
                              " --upload-method files --files NAME...; use that",)


@pytest.mark.parametrize(("words", "message"), [
    (["--upload-method", "all", "--in-list", "a.tsv"], "--in-list names the files of --upload-method user_list"),
    (["--upload-method", "user_list"], "--upload-method user_list needs its files: --in-list NAME"),
    (["--in-list", "a.tsv", "--files", "b.tsv"], "--in-list and --files both name files"),
    (["--files", "b.tsv"], "--files names the files of --upload-method files, not of --upload-method catalog"),
])
def test_file_lists_that_do_not_fit_the_method_are_refused(words, message, monkeypatch):
    with pytest.raises(UsageError, match=re.escape(message)):
        zenodo_settings_of(["--in-dir", "d", "--zenodo-id", "1", *words], monkeypatch)


def test_the_old_token_file_option_reads_the_token_with_a_note(tmp_path, monkeypatch):
    path = token_file(tmp_path, f"{TOKEN}\n".encode())
    monkeypatch.delenv("ZENODO_TOKEN", raising=False)
    _, settings = zenodo_settings(read_command_line(SPECS["upload_zenodo"],
                                                    ["--in-dir", "d", "--zenodo-id", "1", "--token-file", str(path)]))
    assert settings.token == ZenodoToken(TOKEN)
    assert settings.notes == ("--token-file is deprecated; use --zenodo-token FILE (the same)",)
    with pytest.raises(UsageError, match="--token-file and --zenodo-token name different files"):
        zenodo_settings_of(["--in-dir", "d", "--zenodo-id", "1", "--token-file", str(path), "--zenodo-token", "other"],
                           monkeypatch)


def test_a_new_deposition_without_description_gets_cartloaders_text(monkeypatch):
    new = zenodo_settings_of(["--in-dir", "d", "--title", "Lung", "--creators", "Doe, J"], monkeypatch)
    assert new.metadata["description"] == "No description provided."
    assert any('"No description provided."' in note for note in new.notes)
    existing = zenodo_settings_of(["--in-dir", "d", "--zenodo-id", "7"], monkeypatch)
    assert "description" not in existing.metadata and existing.notes == ()


def test_catalog_stays_the_default_upload_method(monkeypatch):
    assert zenodo_settings_of(["--in-dir", "d", "--zenodo-id", "7"], monkeypatch).files.method == "catalog"


@pytest.mark.parametrize("command", ["upload_aws", "upload_zenodo"])
def test_n_jobs_takes_what_cartloader_users_pass(command, monkeypatch):
    if command == "upload_aws":
        assert aws_run_of(["--n-jobs", "256"])[0].n_jobs == 256
        with pytest.raises(UsageError, match="--n-jobs 257: must be a whole number from 1 to 256"):
            aws_settings_of(["--n-jobs", "257"])
    else:
        assert zenodo_run_of(["--in-dir", "d", "--zenodo-id", "1", "--n-jobs", "256"], monkeypatch)[0].n_jobs == 256


def test_cartloaders_aws_cli_and_makefile_options_are_noted_and_ignored():
    settings = aws_settings_of(["--aws", "/usr/bin/aws", "--makefn", "upload_aws.mk"])
    assert settings.notes == (
        "--aws /usr/bin/aws is not needed: uploads go through boto3, no AWS CLI is used",
        "--makefn upload_aws.mk is ignored: no Makefile is written (a re-run compares with the bucket instead)")


def test_the_zenodo_api_root_from_the_environment(monkeypatch):
    monkeypatch.setenv("CARTLOAD_UPLOADER_ZENODO_URL", "http://127.0.0.1:8765/api/")
    assert zenodo_settings_of(["--in-dir", "d", "--zenodo-id", "1"], monkeypatch).api_url == "http://127.0.0.1:8765/api"
    assert zenodo_settings_of(["--in-dir", "d", "--zenodo-id", "1", "--sandbox"],
                              monkeypatch).api_url == "https://sandbox.zenodo.org/api"
    monkeypatch.setenv("CARTLOAD_UPLOADER_ZENODO_URL", "zenodo.org/api")
    with pytest.raises(UsageError, match=re.escape("CARTLOAD_UPLOADER_ZENODO_URL zenodo.org/api: must start with https://")):
        zenodo_settings_of(["--in-dir", "d", "--zenodo-id", "1"], monkeypatch)


# -- upload_aws object options and --delete ---------------------------------------------------------


def test_object_options_are_read_as_aws_cli_spells_them():
    settings = aws_settings_of(["--acl", "Public-Read", "--cache-control", " max-age=60 ", "--storage-class",
                                "standard_ia", "--sse", "AWS:KMS", "--sse-kms-key-id", "1234abcd",
                                "--request-payer", "requester"])
    objects = settings.objects
    assert objects.given == {"--acl": "public-read", "--cache-control": "max-age=60", "--storage-class": "STANDARD_IA",
                             "--sse": "aws:kms", "--sse-kms-key-id": "1234abcd", "--request-payer": "requester"}
    assert objects.stored() == {"--acl": "public-read", "--cache-control": "max-age=60",
                                "--storage-class": "STANDARD_IA", "--sse": "aws:kms", "--sse-kms-key-id": "1234abcd"}
    assert objects.put_params(catalog=False) == {
        "ACL": "public-read", "CacheControl": "max-age=60", "StorageClass": "STANDARD_IA",
        "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "1234abcd", "RequestPayer": "requester"}


def test_without_object_options_only_the_catalog_gets_a_cache_control():
    objects = aws_settings_of([]).objects
    assert objects.stored() == {}
    assert objects.put_params(catalog=True) == {"CacheControl": "no-cache"}
    assert objects.put_params(catalog=False) == {}
    given = aws_settings_of(["--cache-control", "max-age=5"]).objects
    assert given.put_params(catalog=True) == {"CacheControl": "max-age=5"}  # what the user gave, for every file


@pytest.mark.parametrize(("words", "message"), [
    (["--acl", "aws-exec-read"], "--acl aws-exec-read: choose one of private, public-read"),
    (["--acl", "log-delivery-write"], "--acl log-delivery-write: choose one of"),
    (["--storage-class", "COLD"], "--storage-class COLD: choose one of STANDARD, REDUCED_REDUNDANCY"),
    (["--storage-class", "glacier"], "--storage-class glacier: objects in GLACIER cannot be read until restored"),
    (["--storage-class", "DEEP_ARCHIVE"], "objects in DEEP_ARCHIVE cannot be read until restored"),
    (["--sse", "aes"], "--sse aes: choose one of AES256, aws:kms, aws:kms:dsse"),
    (["--sse-kms-key-id", "k"], "--sse-kms-key-id k: a KMS key needs --sse aws:kms"),
    (["--sse", "AES256", "--sse-kms-key-id", "k"], "--sse-kms-key-id k: a KMS key needs --sse aws:kms"),
    (["--request-payer", "owner"], "--request-payer owner: choose one of requester"),
    (["--cache-control", "max-age=1\x07"], "--cache-control 'max-age=1\\x07': must be an HTTP header value"),
    (["--cache-control", "  "], "--cache-control '  ': must be an HTTP header value"),
])
def test_bad_object_options_are_refused_by_name(words, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        aws_settings_of(words)


def test_a_kms_alias_is_used_but_not_compared_and_says_so():
    settings = aws_settings_of(["--sse", "aws:kms", "--sse-kms-key-id", "alias/lab-data"])
    assert settings.objects.put_params(catalog=False)["SSEKMSKeyId"] == "alias/lab-data"
    assert settings.objects.stored() == {"--sse": "aws:kms"}
    assert any("alias/lab-data" in note and "not compared" in note for note in settings.notes)


@pytest.mark.parametrize("group", ["--upload-basics-only", "--upload-optional-only", "--upload-basemap-only"])
def test_delete_is_refused_with_a_partial_upload(group):
    with pytest.raises(UsageError, match=re.escape(f"--delete cannot be used with {group}: that run sends only part")):
        aws_settings_of(["--delete", group])


def test_delete_is_refused_with_a_shard():
    args = read_command_line(SPECS["upload_aws"], ["--in-dir", "d", "--s3-dir", "s3://bucket/x", "--delete"])
    args["--shard"] = "1/4"  # the option of a worker's share (issue 19), read from its usage line once it is there
    with pytest.raises(UsageError, match=re.escape("--delete cannot be used with --shard")):
        aws_settings(args)


def test_delete_needs_a_prefix_to_stay_inside():
    with pytest.raises(UsageError, match=re.escape("--delete with --s3-dir s3://bucket: without a prefix it would")):
        aws_settings(read_command_line(SPECS["upload_aws"], ["--in-dir", "d", "--s3-dir", "s3://bucket", "--delete"]))
    _, collection = aws_settings(read_command_line(
        SPECS["upload_aws"], ["--in-dir", "d", "--s3-dir", "s3://bucket", "--in-list", "s.tsv", "--delete"]))
    assert collection.delete  # each sample has its own prefix, <sample>/
    assert aws_settings_of(["--delete"]).delete and not aws_settings_of([]).delete


# -- every option is declared once: its usage line, and the one settings field that reads it ---------------


def long_names(command: str) -> set[str]:
    """Every option of a command's usage text, by its long name (help aside).

    (CommandSpec also takes "--in-dir." from the wrapped help line of --no-markers for an option: left out here.)
    """
    return {spec.names[-1] for spec in SPECS[command].options.values() if re.fullmatch(r"--[a-z0-9-]+",
                                                                                        spec.names[-1])} - {"--help"}


@pytest.mark.parametrize(("command", "backend_settings"), [("upload_aws", S3Settings),
                                                             ("upload_zenodo", ZenodoSettings)])
def test_every_option_of_a_usage_text_is_read_by_exactly_one_settings_field(command, backend_settings):
    from dataclasses import fields

    read = [name for kind in (RunSettings, backend_settings) for spec in fields(kind)
            for name in spec.metadata.get("options", ())]
    assert sorted(read) == sorted(set(read)), "an option read by two fields"
    assert set(read) == long_names(command)


def test_every_object_option_of_the_usage_text_has_its_row_and_every_row_its_usage_line():
    from uploader.s3.options import OBJECT_OPTIONS

    rows = {row.name for row in OBJECT_OPTIONS}
    usage = SPECS["upload_aws"].usage
    object_lines = usage[usage.index("  --acl "):usage.index("  --delete ")]  # the usage's block of object options
    in_usage = {line.split()[0] for line in object_lines.splitlines() if line.startswith("  --")}
    assert rows == in_usage
