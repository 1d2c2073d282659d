"""The object-store interface shared by every backend.

Products, archived raw frames and model files are written once and never
overwritten: ``put`` is a conditional write (``If-None-Match: *``). A retry that
sends the same bytes again succeeds and returns the same URI (idempotent jobs);
different bytes under an existing key raise :class:`ObjectExists`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Protocol, runtime_checkable

from service.errors import SynmagError

# Keys are relative POSIX paths made of safe characters, without '.' or '..' segments.
_KEY_RE = re.compile(r"^[A-Za-z0-9._\-]+(/[A-Za-z0-9._\-]+)*$")


class ObjectExists(SynmagError):
    """A different object already exists under this key; nothing was written.

    Attributes
    ----------
    key : str
        The key that was asked for.
    uri : str
        URI of the existing object.
    existing_sha256 : str or None
        SHA-256 of the existing object's bytes, when known.
    """

    def __init__(self, key: str, uri: str, existing_sha256: str | None = None) -> None:
        super().__init__(f"object exists with different content: {uri}")
        self.key = key
        self.uri = uri
        self.existing_sha256 = existing_sha256


class ObjectNotFound(SynmagError):
    """No object under this key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no such object: {key}")
        self.key = key


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    """Return ``key`` when it is a safe relative key, else raise ``ValueError``."""
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(f"invalid object key {key!r}")
    if any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"invalid object key {key!r}")
    return key


@runtime_checkable
class ObjectStore(Protocol):
    """A write-once object store (``file://`` directory or ``s3://bucket/prefix``).

    ``url`` is the store's own URL (as configured in ``SYNMAG_STORE_URL``).
    """

    url: str

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        *,
        if_none_match: bool = True,
    ) -> str:
        """Store ``data`` under ``key`` and return the object's URI.

        With ``if_none_match`` (the default) an existing object is never
        overwritten: same bytes -> its URI is returned; different bytes ->
        :class:`ObjectExists`. ``if_none_match=False`` replaces it (only for
        mutable things such as caches; never for products).
        """
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes; :class:`ObjectNotFound` when missing."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def uri_for(self, key: str) -> str:
        """The stable URI recorded in the database (``file:///...`` or ``s3://...``)."""
        ...

    def key_for(self, uri: str) -> str:
        """Inverse of :meth:`uri_for`; ``ValueError`` for a URI of another store."""
        ...

    def url_for(self, key: str, expires: int = 3600) -> str:
        """A URL a client can fetch: presigned HTTP(S) for S3, ``file://`` for a directory."""
        ...
