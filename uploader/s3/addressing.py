"""How a client addresses a bucket: as a sub-domain (virtual-hosted style) or as a path, on AWS or elsewhere."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


def is_aws_host(host: str) -> bool:
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn"))


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def uses_virtual_hosts(client: S3Client, bucket: str) -> bool:
    """Whether the client addresses `bucket` as a sub-domain (virtual-hosted style) rather than a path."""
    style = (getattr(client.meta.config, "s3", None) or {}).get("addressing_style", "auto")
    host = urlsplit(client.meta.endpoint_url).hostname or ""
    if style == "auto":  # botocore: sub-domains on AWS for names that are valid host labels (no dots: TLS)
        return is_aws_host(host) and "." not in bucket and bucket.lower() == bucket
    return bool(style == "virtual" and not is_ip_address(host))
