"""The S3 client for a run (botocore's, as boto3 builds it), and botocore's failures turned into the uploader's errors.

Integrity does not depend on the store supporting botocore's newer default
checksums: those are turned off (`when_required`) unless AWS_* says
otherwise, and every request that carries data carries a Content-MD5 the
server checks (writer.py). The payload is then not SHA-256-signed as well,
over http just as botocore already does over https when a Content-MD5 is
present: a second hash of every byte would prove nothing more.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from uploader import __version__
from uploader.errors import AuthError, FileUploadError, RemoteError, UploaderError, UsageError
from uploader.redact import redact
from uploader.retry import pause_before
from uploader.s3.addressing import is_aws_host, is_ip_address
from uploader.s3.settings import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
              "InvalidToken", "AllAccessDisabled", "AccountProblem", "403", "401"}
INTEGRITY_CODES = {"BadDigest", "InvalidDigest"}  # the bytes the server got are not the bytes we hashed
# The store did not take a request this time; the same request later may well go through. A cut body is
# IncompleteBody on AWS and ClientDisconnected on SeaweedFS; a cut CompleteMultipartUpload is MalformedXML.
TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed",
                   "IncompleteBody", "ClientDisconnected", "MalformedXML", "OperationAborted", "Throttling",
                   "ThrottlingException", "TooManyRequests"}

# A control call that gets these would get them again: a skewed clock, or an XML body botocore built whole.
NOT_FOR_CONTROL_CALLS = {"MalformedXML", "RequestTimeTooSkewed"}
PASSING_STATUSES = {429, 500, 502, 503, 504}  # not 501 (Not Implemented): that answer is final
# A store that has not answered once in this run may be the wrong address rather than a passing outage: its
# requests are tried for this long at most (then the stall timeout applies, once it has answered).
FIRST_CONTACT_SECONDS = float(os.environ.get("CARTLOAD_UPLOADER_FIRST_CONTACT_SECONDS", "10"))

def make_client(settings: S3Settings, n_jobs: int = 8, outages: RideThroughOutages | None = None, *,
                sign_requests: bool = True) -> S3Client:
    """The run's one client (clients are thread-safe), pooling connections for `n_jobs` requests in flight;
    configuration problems become one-line errors. `outages`: the client's ride-through of outages, for its
    owner to stop when the run is interrupted. `sign_requests` False: anonymous requests, as
    `aws --no-sign-request` sends them (a public bucket; no credentials are looked for)."""
    import botocore.exceptions

    try:
        return _build_client(settings, n_jobs, outages, sign_requests)
    except botocore.exceptions.ProfileNotFound as missing:
        given = f"--profile {settings.profile}" if settings.profile \
            else f"AWS_PROFILE {missing.kwargs.get('profile', '')}"
        raise UsageError(f"{given}: no such profile in the AWS config files;"
                         " check ~/.aws/config or run 'aws configure --profile NAME'") from None
    except botocore.exceptions.BotoCoreError as exc:  # e.g. a config file that does not parse
        raise UsageError(f"AWS configuration problem: {exc}; fix the file (or AWS_CONFIG_FILE)") from None


def _build_client(settings: S3Settings, n_jobs: int = 8, outages: RideThroughOutages | None = None,
                  sign_requests: bool = True) -> S3Client:
    from botocore.config import Config

    session = _session(settings.profile)
    options = _client_options(settings, n_jobs, sign_requests)
    region = session.get_config_variable("region") or "us-east-1"
    style = settings.addressing_style
    configured = (session.get_scoped_config().get("s3") or {}).get("addressing_style")

    def prefer_path_style(host: str) -> bool:
        # S3-compatible stores on custom endpoints rarely resolve bucket sub-domains (botocore would
        # choose path-style there too, but say so rather than rely on it).
        return style == "auto" and not configured and not is_aws_host(host)

    def create() -> S3Client:  # botocore types every client as a BaseClient; this one is S3's
        return cast("S3Client", session.create_client("s3", endpoint_url=settings.endpoint_url,
                                                      region_name=region, config=Config(**options)))

    # An endpoint given on the command line or in the environment is known before the client exists:
    # build it once (a client costs a tenth of a second); one from a config file is only known after.
    known = _endpoint_known_before(settings)
    if known and prefer_path_style(urlsplit(known).hostname or ""):
        options["s3"]["addressing_style"] = "path"
    client = create()
    host = urlsplit(client.meta.endpoint_url).hostname or ""
    if style == "virtual" and is_ip_address(host):
        raise UsageError(f"--addressing-style virtual: the endpoint {client.meta.endpoint_url} is an IP address, which"
                         " has no bucket sub-domains; use its host name, or --addressing-style path")
    if "addressing_style" not in options["s3"] and prefer_path_style(host):
        options["s3"]["addressing_style"] = "path"
        client = create()
    _register_handlers(client, outages or RideThroughOutages(settings.stall_seconds))
    if sign_requests and session.get_credentials() is None:
        raise AuthError("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,"
                        " run 'aws configure', or pass --profile")
    return client


def _session(profile: str | None) -> Any:
    """botocore's own session, as boto3's Session wraps it: importing boto3 (and the s3transfer it loads for
    transfer methods never used here) cost ~40 ms before every run's first request."""
    import botocore.session

    session = botocore.session.get_session()
    if profile:
        session.set_config_variable("profile", profile)
    # Timestamps (LastModified) are never used: parsing them with dateutil was a third of a listing's cost.
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    return session


def _client_options(settings: S3Settings, n_jobs: int, sign_requests: bool) -> dict[str, Any]:
    """botocore's Config for the run's client: what is safe on every store, unless AWS_* says otherwise."""
    import botocore

    options: dict[str, Any] = {
        "max_pool_connections": 2 * n_jobs + 4,
        # Given whole, the User-Agent is built once; botocore's own is rebuilt twice per request
        # (a tenth of a small PUT's CPU).
        "user_agent": f"cartload-uploader/{__version__} Botocore/{botocore.__version__}"
                      f" Python/{platform.python_version()}",
        # Every request that carries data carries a Content-MD5 the server checks (see above).
        "s3": {"payload_signing_enabled": False},
        # Sized for control calls (listings, HEADs, multipart create/complete): an endpoint that takes the
        # connection and never answers costs seconds, not botocore's 60 s per attempt.
        "connect_timeout": float(os.environ.get("CARTLOAD_UPLOADER_CONNECT_TIMEOUT", "10")),
        "read_timeout": float(os.environ.get("CARTLOAD_UPLOADER_READ_TIMEOUT", "30")),
    }
    # Let explicit AWS_* settings win; otherwise choose what is safe on every store.
    if not os.environ.get("AWS_REQUEST_CHECKSUM_CALCULATION"):
        options["request_checksum_calculation"] = "when_required"
    if not os.environ.get("AWS_RESPONSE_CHECKSUM_VALIDATION"):
        options["response_checksum_validation"] = "when_required"
    if not os.environ.get("AWS_RETRY_MODE") and not os.environ.get("AWS_MAX_ATTEMPTS"):
        # botocore's own retries share a quota that a 2-second outage drains: ours (below) try instead.
        options["retries"] = {"mode": "standard", "max_attempts": 0}  # retries, in botocore's Config: none
    if not sign_requests:
        options["signature_version"] = botocore.UNSIGNED
    if settings.addressing_style != "auto":
        options["s3"]["addressing_style"] = settings.addressing_style
    return options


def _register_handlers(client: S3Client, outages: RideThroughOutages) -> None:
    # On 'before-call.s3', after botocore's own handler there that adds it: a body we hold whole needs no
    # '100-continue' round trip (the write probe's part, and every send when boto3 carries the bytes).
    client.meta.events.register_last("before-call.s3", _no_expect_header)
    client.meta.events.register_first("needs-retry.s3", outages)  # type: ignore[arg-type]


class RideThroughOutages:
    """The one place where a request is tried again: every call of the run's client (listings, HEADs, multipart
    create/complete, deletes, leases, bucket settings, the write check) rides an outage through.

    A request that failed for a passing reason (no answer at all, a cut connection, a timeout, a 5xx, 429 or
    a throttling code) is tried again after a growing pause, for as long as `within` seconds have not passed
    since its first failure: the run's --stall-timeout, so an outage the run rides through in one phase is
    ridden through in every phase. Until the store has answered once, FIRST_CONTACT_SECONDS at most: a wrong
    --endpoint-url fails in seconds. A botocore `needs-retry` handler: it answers the pause, or None.
    """

    def __init__(self, within: float) -> None:
        self.within = within
        self.answered = False  # the store has answered a request of this run (any HTTP answer)
        self.stopped = False  # the run was interrupted: nothing more is tried again

    def stop(self) -> None:
        self.stopped = True

    def __call__(self, request_dict: dict[str, Any], attempts: int, response: Any = None,
                 caught_exception: BaseException | None = None, **kwargs: Any) -> float | None:
        self.answered = self.answered or response is not None
        if self.stopped or not _passing_failure(response, caught_exception):
            return None
        context = request_dict.setdefault("context", {})
        first_failed = context.setdefault("cartload_first_failure", time.monotonic())
        limit = self.within if self.answered else min(self.within, FIRST_CONTACT_SECONDS)
        if time.monotonic() - first_failed >= limit:
            return None
        return pause_before(attempts - 1)


def _passing_failure(response: Any, caught: BaseException | None) -> bool:
    """No answer (refused, reset, timed out), or an answer that says 'not now'."""
    import botocore.exceptions as bx

    if caught is not None:
        return isinstance(caught, (bx.HTTPClientError, bx.ConnectionError)) and not isinstance(caught, bx.SSLError)
    if response is None:
        return False
    status = int(response[0].status_code)
    code = str(response[1].get("Error", {}).get("Code", ""))
    return status in PASSING_STATUSES or code in TRANSIENT_CODES - NOT_FOR_CONTROL_CALLS


def _no_expect_header(params: dict[str, Any], model: Any = None, **kwargs: Any) -> None:
    if model is not None and model.name in ("PutObject", "UploadPart"):
        params.get("headers", {}).pop("Expect", None)


def _endpoint_known_before(settings: S3Settings) -> str:
    """--endpoint-url, else the environment's (botocore's order); "" when only the client will know."""
    if settings.endpoint_url:
        return settings.endpoint_url
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return ""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""


@contextmanager
def uploader_errors_for(what: str, settings: S3Settings) -> Iterator[None]:
    """Turn botocore failures of a call that is not a file transfer into one-line UploaderErrors."""
    import botocore.exceptions as bx

    try:
        yield
    except bx.ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raise refusal_as_error(str(error.get("Code", "")), status, error_message(exc), what, settings,
                               bucket=str(error.get("BucketName") or "")) from None
    except (bx.NoCredentialsError, bx.PartialCredentialsError):
        raise AuthError("no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,"
                        " run 'aws configure', or pass --profile") from None
    except (bx.SSOError, bx.TokenRetrievalError):
        raise AuthError(f"AWS SSO login needed: run 'aws sso login' (profile {settings.profile or 'default'});"
                        " under Singularity ~/.aws must be writable for the SSO cache") from None
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError) as exc:
        raise RemoteError(f"cannot reach the S3 endpoint for {what}: {redact(str(exc))}; check --endpoint-url"
                          " and the network") from None
    except bx.BotoCoreError as exc:
        raise RemoteError(f"{what} failed: {exc}") from None


def refusal_as_error(code: str, status: int | None, message: str, what: str, settings: S3Settings,
                     bucket: str | None = None) -> UploaderError:
    """A request the store refused (S3's error code, the HTTP status), as the one-line error the user reads."""
    if code == "NoSuchBucket" or (code == "404" and what.startswith("bucket")):
        return UsageError(f"--s3-dir: bucket '{bucket or what}' does not exist ({what}); create it first or check"
                          " the name (and --endpoint-url)")
    if code == "InvalidAccessKeyId":
        return AuthError(f"the access key is unknown to this store ({code}, {what}): check AWS_ACCESS_KEY_ID"
                         " (or --profile) and that --endpoint-url is the store the key belongs to")
    if code in ("SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"):
        return AuthError(f"the credentials are wrong ({code}, {what}): the secret key does not match the"
                         " access key, or they expired; check AWS_SECRET_ACCESS_KEY (or --profile)")
    if code.isdigit() and not what.startswith("bucket") and status != 403:
        # An S3 store answers with an XML error document; a bare status is a web server of another kind.
        endpoint = redact(settings.endpoint_url or "the S3 endpoint")
        return UsageError(f"{endpoint} does not speak S3: {what} got a plain HTTP {code} without an S3 error;"
                          " check --endpoint-url (or AWS_ENDPOINT_URL_S3)")
    if is_auth_refusal(code, status):
        return AuthError(f"access denied for {what}: these credentials may not do this; ask the"
                         " bucket owner for s3:ListBucket and s3:PutObject on it")
    return RemoteError(f"{what} failed: {code} {message}")


def is_auth_refusal(code: str, status: int | None) -> bool:
    return code in AUTH_CODES or status == 403


def as_file_upload_error(exc: BaseException) -> FileUploadError:
    """A failed transfer of one file, as the runner's FileUploadError (integrity failures are retryable)."""
    import botocore.exceptions as bx

    from uploader.s3.transport import TransportError  # the data path's, loaded only when it is used

    if isinstance(exc, FileUploadError):
        return exc
    if isinstance(exc, TransportError):
        return _classified(str(exc), exc.code, exc.status)
    if isinstance(exc, bx.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchUpload":
            return FileUploadError("its multipart upload was aborted by someone else (NoSuchUpload): another"
                                   " upload to this prefix seems to be running; let it finish, then re-run")
        return _classified(f"{code}: {error_message(exc)}", code, status)
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.ReadTimeoutError,
                        bx.ConnectTimeoutError, bx.HTTPClientError)):
        return FileUploadError(f"{type(exc).__name__}: {exc}", transient=True)
    if isinstance(exc, OSError) and not isinstance(exc, bx.BotoCoreError):
        return FileUploadError(f"cannot read the file: {exc.strerror or exc}")
    return FileUploadError(f"{type(exc).__name__}: {exc}")


def _classified(reason: str, code: str, status: int | None) -> FileUploadError:
    """BadDigest is the bytes arriving wrong; 5xx, 429, a cut body or no answer at all is the store, this time."""
    if code in INTEGRITY_CODES:  # botocore does not retry it
        return FileUploadError(reason, retryable=True)
    no_answer = not code and status is None  # the connection failed or was cut: no HTTP status at all
    transient = code in TRANSIENT_CODES or no_answer or (status is not None and (status >= 500 or status == 429))
    return FileUploadError(reason, transient=transient)



def error_message(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
