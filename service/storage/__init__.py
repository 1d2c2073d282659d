"""Write-once object storage: a local directory or an S3 bucket.

``open_store(settings)`` picks the backend from ``SYNMAG_STORE_URL``
(``file://DIR`` or ``s3://bucket/prefix``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.storage.base import ObjectExists, ObjectNotFound, ObjectStore, sha256_hex
from service.storage.keys import model_key, product_key, raw_key
from service.storage.local import LocalStore

if TYPE_CHECKING:
    from service.settings import Settings

__all__ = [
    "LocalStore",
    "ObjectExists",
    "ObjectNotFound",
    "ObjectStore",
    "model_key",
    "open_store",
    "product_key",
    "raw_key",
    "sha256_hex",
]


def open_store(settings: Settings) -> ObjectStore:
    """The object store named by ``settings.store_url``."""
    url = settings.store_url
    if url.startswith("file://"):
        return LocalStore(url)
    if url.startswith("s3://"):
        from service.storage.s3 import S3Store

        return S3Store(url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
    raise ValueError(f"unsupported store URL {url!r}")
