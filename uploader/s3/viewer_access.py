"""What the viewer needs of a bucket, and the exact fixes: public read of the dataset prefix and a CORS rule.

Each fix is merged into what the bucket already has (its policy's statements,
its CORS rules: none is replaced) and printed as the `aws s3api` command
that applies it; with --setup-viewer-access it is applied here. The
authenticated client only reads and (on request) writes the bucket's CORS
and policy; what a browser can read is judged in viewer_reads.py.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from uploader.s3.addressing import is_aws_host
from uploader.s3.client import error_message
from uploader.s3.viewer_reads import REPAIR, Check

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

POLICY_SID = "CartloadUploaderViewerRead"
CORS_RULE_ID = "cartload-uploader-viewer"
CORS_RULE = {"AllowedMethods": ["GET", "HEAD"], "AllowedHeaders": ["Range", "If-Match"], "ExposeHeaders": ["ETag"],
             "MaxAgeSeconds": 3000}
PUBLIC_ACCESS_BLOCK_FIX = ("BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=false,"
                           "RestrictPublicBuckets=false")


class BucketAccess:
    """The bucket's CORS rules and policy, as the viewer on `origin` needs them: the fixes, and the opt-in setup."""

    def __init__(self, client: S3Client, bucket: str, origin: str, profile: str | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.origin = origin
        self.profile = profile
        self.setting_up = False  # this run applies what is missing (--setup-viewer-access): no hint to re-run with it

    # -- the fixes --------------------------------------------------------------------------

    def fixes(self, failed: list[Check], prefixes: list[str]) -> list[str]:
        """The exact commands that make the failed checks pass, merged with what the bucket already has."""
        needs = {check.needs for check in failed}
        lines: list[str] = []
        if "policy" in needs:
            lines += self._policy_fix(prefixes)
        if "cors" in needs:
            lines += self._cors_fix()
        if needs & {"policy", "cors"} and not self.setting_up:  # not in the run that just tried it
            lines.append("or let this tool apply what is missing (merged, nothing replaced): re-run with"
                         " --setup-viewer-access")
        if "repair" in needs:
            lines.append(f"fix the stored objects: {REPAIR}")
        return lines

    def recommendations(self, warnings: list[Check]) -> list[str]:
        """For CORS that only weakens reading (no ETag exposed, Range not allowed in a preflight): the rule to add."""
        if not any(check.needs == "cors" for check in warnings):
            return []
        rules, _ = self._current_cors()
        if merged_cors(rules, self.origin) is None:
            return []  # a rule already recommends all of it: the store answers otherwise
        return [line.replace("fix CORS:", "recommended CORS:", 1) for line in self._cors_fix()]

    def _policy_fix(self, prefixes: list[str]) -> list[str]:
        existing, unreadable = self._current_policy()
        merged = merged_policy(existing, self.bucket, prefixes)
        where = self._objects_under(prefixes)
        if merged is None:
            lines = [f"fix public read: the bucket policy already lets anyone read {where}, yet anonymous reads are"
                     " denied: Block Public Access (RestrictPublicBuckets) or an account setting overrides it"]
        elif unreadable:  # a put-bucket-policy of our statement alone would replace the bucket's whole policy
            ours = next(s for s in merged["Statement"] if s.get("Sid") == POLICY_SID)
            lines = [f"fix public read: let anyone read {where}. The bucket policy could not be read ({unreadable}),"
                     " so no command is given (one would replace the whole policy): ask the bucket owner to add"
                     " this statement to it:", "  " + _compact(ours)]
        else:
            count = len(_as_list(existing.get("Statement")))
            kept = f"keeps its {count} existing statement(s)" if count else "is the bucket's first policy"
            lines = [f"fix public read: let anyone read {where} (the policy below {kept}):",
                     "  " + self._aws("put-bucket-policy", "--policy", _compact(merged))]
        if self._public_access_blocked() is not False and is_aws_host(urlsplit(self.client.meta.endpoint_url)
                                                                       .hostname or ""):
            lines.append("  if Block Public Access refuses it (new AWS buckets block public policies), first: "
                         + self._aws("put-public-access-block", "--public-access-block-configuration",
                                     PUBLIC_ACCESS_BLOCK_FIX))
        return lines

    def _cors_fix(self) -> list[str]:
        rules, unreadable = self._current_cors()
        merged = merged_cors(rules, self.origin)
        if merged is None:
            return [f"fix CORS: a rule of the bucket already allows {self.origin}, yet the browser's"
                    " requests are refused: check the store's CORS support"]
        if unreadable:  # a put-bucket-cors of our rule alone would replace every rule the bucket has
            return [f"fix CORS: allow {self.origin} to read with Range and see ETag. The bucket's CORS rules could"
                    f" not be read ({unreadable}), so no command is given (one would replace them all): ask the"
                    " bucket owner to add this rule first among them:", "  " + _compact(merged[0])]
        kept = f"keeps its {len(rules)} existing rule(s)" if rules else "is the bucket's first"
        return [f"fix CORS: allow {self.origin} to read with Range and see ETag (the configuration below"
                f" {kept}):", "  " + self._aws("put-bucket-cors", "--cors-configuration",
                                               _compact({"CORSRules": merged}))]

    def _objects_under(self, prefixes: list[str]) -> str:
        return ", ".join(f"s3://{self.bucket}/{p}/*" if p else f"s3://{self.bucket}/*" for p in prefixes)

    def _aws(self, command: str, *args: str) -> str:
        words = ["aws", "s3api", command, "--bucket", self.bucket, *args]
        host = urlsplit(self.client.meta.endpoint_url).hostname or ""
        if not is_aws_host(host):
            words += ["--endpoint-url", self.client.meta.endpoint_url]
        if self.profile:
            words += ["--profile", self.profile]
        return shlex.join(words)

    # -- --setup-viewer-access ---------------------------------------------------------------

    def set_up(self, prefixes: list[str]) -> list[str]:
        """Add what the viewer needs to the bucket's CORS rules and policy (merged); lines saying what was done."""
        return [self._set_up_cors(), self._set_up_policy(prefixes)]

    def _set_up_cors(self) -> str:
        rules, unreadable = self._current_cors()
        if unreadable:
            return f"viewer access: CORS not changed: the bucket's CORS rules could not be read ({unreadable})"
        merged = merged_cors(rules, self.origin)
        if merged is None:
            return f"viewer access: CORS already allows {self.origin}"
        configuration: Any = {"CORSRules": merged}
        try:
            self.client.put_bucket_cors(Bucket=self.bucket, CORSConfiguration=configuration)
        except Exception as exc:
            return f"viewer access: CORS not changed: {_error(exc)}; ask the bucket owner for s3:PutBucketCORS"
        return (f"viewer access: added a CORS rule for {self.origin} (GET, HEAD; Range, If-Match; ETag"
                f" exposed), before the bucket's {len(rules)} existing rule(s)")

    def _set_up_policy(self, prefixes: list[str]) -> str:
        existing, unreadable = self._current_policy()
        if unreadable:
            return f"viewer access: policy not changed: the bucket policy could not be read ({unreadable})"
        merged = merged_policy(existing, self.bucket, prefixes)
        if merged is None:
            return "viewer access: the bucket policy already lets anyone read the dataset"
        if self._public_access_blocked():
            return ("viewer access: policy not changed: Block Public Access on this bucket forbids a public policy;"
                    " the bucket owner can lift it for this bucket with: "
                    + self._aws("put-public-access-block", "--public-access-block-configuration",
                                PUBLIC_ACCESS_BLOCK_FIX) + " (the account-wide setting must allow it too)")
        try:
            self.client.put_bucket_policy(Bucket=self.bucket, Policy=json.dumps(merged))
        except Exception as exc:
            message = _error(exc)
            if "public" in message.lower() and "block" in message.lower():
                return (f"viewer access: policy not changed: Block Public Access forbids it ({message}); lift"
                        " BlockPublicPolicy and RestrictPublicBuckets for this bucket (and the account) first")
            return f"viewer access: policy not changed: {message}; ask the bucket owner for s3:PutBucketPolicy"
        kept = len(_as_list(existing.get("Statement")))
        kept_text = f"kept its {kept} existing statement(s)" if kept else "the bucket had no policy"
        return f"viewer access: added public read of {self._objects_under(prefixes)} to the bucket policy" \
               f" ({kept_text})"

    # -- the bucket's settings ---------------------------------------------------------------

    def _current_cors(self) -> tuple[list[dict[str, Any]], str]:
        """The bucket's CORS rules, and why they could not be read ("" if they could)."""
        try:
            return [dict(rule) for rule in self.client.get_bucket_cors(Bucket=self.bucket)["CORSRules"]], ""
        except Exception as exc:
            return ([], "") if _code(exc) == "NoSuchCORSConfiguration" else ([], _error(exc))

    def _current_policy(self) -> tuple[dict[str, Any], str]:
        """The bucket policy, and why it could not be read ("" if it could)."""
        try:
            return dict(json.loads(self.client.get_bucket_policy(Bucket=self.bucket)["Policy"])), ""
        except Exception as exc:
            return ({}, "") if _code(exc) == "NoSuchBucketPolicy" else ({}, _error(exc))

    def _public_access_blocked(self) -> bool | None:
        """Whether the bucket's Block Public Access forbids a public policy (None: unknown, e.g. not supported)."""
        try:
            settings = self.client.get_public_access_block(Bucket=self.bucket)["PublicAccessBlockConfiguration"]
        except Exception as exc:
            return False if _code(exc) == "NoSuchPublicAccessBlockConfiguration" else None
        return bool(settings.get("BlockPublicPolicy") or settings.get("RestrictPublicBuckets"))



# -- merging with what the bucket has ---------------------------------------------------------------


def merged_cors(rules: list[dict[str, Any]], origin: str) -> list[dict[str, Any]] | None:
    """The bucket's CORS rules with one for the viewer first; None if a rule already gives it all it needs.

    First, because a store answers a request with the first rule that
    matches its origin and method: an older rule for the same origin that
    does not expose ETag would otherwise win.
    """
    first = next((rule for rule in rules if _origin_allowed(rule, origin) and "GET" in rule.get("AllowedMethods", [])),
                 None)
    if first is not None and _cors_rule_serves_viewer(first):
        return None
    ours = {"ID": CORS_RULE_ID, "AllowedOrigins": [origin], **CORS_RULE}
    return [ours, *(rule for rule in rules if rule.get("ID") != CORS_RULE_ID)]


def _cors_rule_serves_viewer(rule: dict[str, Any]) -> bool:
    headers = {header.lower() for header in rule.get("AllowedHeaders", [])}
    exposed = {header.lower() for header in rule.get("ExposeHeaders", [])}
    return ({"GET", "HEAD"} <= set(rule.get("AllowedMethods", [])) and ("*" in headers or {"range", "if-match"}
            <= headers) and "etag" in exposed)


def _origin_allowed(rule: dict[str, Any], origin: str) -> bool:
    return any(fnmatch.fnmatchcase(origin, allowed) for allowed in rule.get("AllowedOrigins", []))


def merged_policy(policy: dict[str, Any], bucket: str, prefixes: list[str]) -> dict[str, Any] | None:
    """The bucket policy with public read of each dataset prefix added; None if it already grants that."""
    statements = [dict(s) for s in _as_list(policy.get("Statement"))]
    resources = [f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*" for prefix in prefixes]
    missing = [arn for arn in resources if not any(_grants_public_read(s, arn) for s in statements)]
    if not missing:
        return None
    ours = next((s for s in statements if s.get("Sid") == POLICY_SID), None)
    if ours is None:
        ours = {"Sid": POLICY_SID, "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": []}
        statements.append(ours)
    ours["Resource"] = sorted(set(_as_list(ours.get("Resource"))) | set(missing))
    return {"Version": policy.get("Version", "2012-10-17"), **{k: v for k, v in policy.items()
                                                              if k not in ("Version", "Statement")},
            "Statement": statements}


def _grants_public_read(statement: dict[str, Any], arn: str) -> bool:
    principal = statement.get("Principal")
    public = principal == "*" or (isinstance(principal, dict) and "*" in _as_list(principal.get("AWS")))
    actions = _as_list(statement.get("Action"))
    return (statement.get("Effect") == "Allow" and public and "Condition" not in statement
            and any(fnmatch.fnmatchcase("s3:GetObject", action) for action in actions)
            and any(fnmatch.fnmatchcase(arn, resource) for resource in _as_list(statement.get("Resource"))))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]



def _compact(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))



def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _error(exc: BaseException) -> str:
    code = _code(exc)
    return f"{code}: {error_message(exc)}" if code else f"{type(exc).__name__}: {exc}"
