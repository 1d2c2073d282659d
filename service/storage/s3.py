"""Object store in an S3 bucket (``s3://bucket/prefix``) through boto3.

Products are written with a conditional put (``If-None-Match: *``), which S3,
SeaweedFS (checked against 4.48 in tests) and MinIO honour: the server refuses
the write with 412 when the key exists, so even two racing writers cannot
overwrite each other. Each object carries its SHA-256 in its metadata
(``x-amz-meta-sha256``) so a retry can be recognised without reading the body.

A server that answers ``NotImplemented`` to the conditional header gets a
head-then-put fallback, which has a race (two writers between head and put)
and logs a warning once.

Credentials come from the usual AWS sources (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, profiles); the endpoint from
``SYNMAG_S3_ENDPOINT_URL`` (path-style addressing when set).
"""

from __future__ import annotations

import logging
from typing import Any

from service.storage.base import ObjectExists, ObjectNotFound, check_key, sha256_hex

log = logging.getLogger(__name__)

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix/")`` (prefix may be empty)."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"s3:// URL needs a bucket: {url!r}")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class S3Store:
    """Write-once object store in an S3 bucket.

    Parameters
    ----------
    url : str
        ``s3://bucket`` or ``s3://bucket/prefix``.
    endpoint_url : str, optional
        Non-AWS endpoint (SeaweedFS, MinIO); enables path-style addressing.
    region : str
        Region used for signing.
    client : optional
        A ready boto3 S3 client (tests); built from the arguments otherwise.
    **client_kwargs
        Passed to ``boto3.client`` (e.g. ``aws_access_key_id``).
    """

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        client: Any = None,
        **client_kwargs: Any,
    ) -> None:
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                signature_version="s3v4",
                s3={"addressing_style": "path" if endpoint_url else "auto"},
                retries={"mode": "standard", "max_attempts": 4},
                connect_timeout=10,
                read_timeout=60,
            )
            client = boto3.client(
                "s3", endpoint_url=endpoint_url, region_name=region, config=config, **client_kwargs
            )
        self.client = client
        self._conditional = True  # False once the server said it cannot do If-None-Match

    def __repr__(self) -> str:
        return f"S3Store({self.url})"

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    def key_for(self, uri: str) -> str:
        head = f"s3://{self.bucket}/{self.prefix}"
        if not uri.startswith(head):
            raise ValueError(f"{uri!r} is not in {self!r}")
        return check_key(uri[len(head) :])

    def url_for(self, key: str, expires: int = 3600) -> str:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._full(key)}, ExpiresIn=expires
        )

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def _head(self, key: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except Exception as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise

    def get(self, key: str) -> bytes:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
        except Exception as exc:
            if _code(exc) in _NOT_FOUND:
                raise ObjectNotFound(key) from None
            raise
        return resp["Body"].read()

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        *,
        if_none_match: bool = True,
    ) -> str:
        digest = sha256_hex(data)
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._full(key),
            "Body": data,
            "ContentType": content_type,
            "Metadata": {"sha256": digest},
        }
        if not if_none_match:
            self.client.put_object(**kwargs)
            return self.uri_for(key)
        for _attempt in range(4):
            if not self._conditional:
                return self._put_head_then_put(key, kwargs, digest)
            try:
                self.client.put_object(IfNoneMatch="*", **kwargs)
                return self.uri_for(key)
            except Exception as exc:
                code = _code(exc)
                if code in ("PreconditionFailed", "412"):
                    return self._same_or_raise(key, digest)
                if code == "ConditionalRequestConflict":  # a concurrent put in flight: try again
                    continue
                if code in ("NotImplemented", "501"):
                    log.warning("%r: server ignores If-None-Match; head-then-put fallback (racy)", self)
                    self._conditional = False
                    continue
                raise
        return self._same_or_raise(key, digest)

    def _put_head_then_put(self, key: str, kwargs: dict[str, Any], digest: str) -> str:
        if self._head(key) is not None:
            return self._same_or_raise(key, digest)
        self.client.put_object(**kwargs)
        return self.uri_for(key)

    def _same_or_raise(self, key: str, digest: str) -> str:
        head = self._head(key)
        if head is None:  # deleted in between: nothing to compare with
            raise ObjectExists(key, self.uri_for(key), None)
        existing = head.get("Metadata", {}).get("sha256")
        if existing is None:  # written by something else: compare the bytes
            existing = sha256_hex(self.get(key))
        if existing != digest:
            raise ObjectExists(key, self.uri_for(key), existing)
        return self.uri_for(key)
