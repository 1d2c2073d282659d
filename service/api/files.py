"""Serving stored objects: ETag, cache headers, 304, presigned redirects for S3.

Products are write-once, so their SHA-256 (recorded in the database) is a
strong ETag and they may be cached forever. A file store is streamed from disk;
an S3 store answers with a redirect to a presigned URL so the bytes never pass
through the API.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, Response, status
from fastapi.responses import FileResponse, RedirectResponse

from service.storage import ObjectNotFound, ObjectStore

IMMUTABLE = "public, max-age=31536000, immutable"
PRESIGN_SECONDS = 3600


def etag_matches(request: Request, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (or ``*``)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    candidates = {c.strip().removeprefix("W/") for c in header.split(",")}
    return "*" in candidates or etag in candidates


def serve_object(
    request: Request,
    store: ObjectStore,
    uri: str,
    sha256: str | None,
    media_type: str,
) -> Response:
    """Answer with the object at ``uri``: 304, a redirect (S3) or the bytes."""
    try:
        key = store.key_for(uri)
    except ValueError:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "object is not in the configured store"
        ) from None
    filename = key.rsplit("/", 1)[-1]
    etag = f'"{sha256}"' if sha256 else None
    headers = {"Cache-Control": IMMUTABLE}
    if etag:
        headers["ETag"] = etag
        if etag_matches(request, etag):
            return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    if store.url.startswith("s3://"):
        url = store.url_for(key, expires=PRESIGN_SECONDS)
        # The redirect target expires: the redirect itself must not outlive it.
        return RedirectResponse(
            url,
            status_code=status.HTTP_307_TEMPORARY_REDIRECT,
            headers={"Cache-Control": f"private, max-age={PRESIGN_SECONDS // 2}"},
        )
    path_for = getattr(store, "path_for", None)
    disposition = f'inline; filename="{filename}"'
    if path_for is not None:
        path = path_for(key)
        if not path.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{filename} is missing from the store")
        headers["Content-Disposition"] = disposition
        return FileResponse(path, media_type=media_type, headers=headers)
    try:
        data = store.get(key)
    except ObjectNotFound:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"{filename} is missing from the store"
        ) from None
    headers["Content-Disposition"] = disposition
    return Response(data, media_type=media_type, headers=headers)
