"""Object store in a local directory (``file://DIR``), the embedded default.

Writes are atomic: the bytes go to a temporary file in the target directory,
are flushed to disk, and are then hard-linked to the final name. ``link(2)``
fails when the name exists, so a conditional put can never overwrite, even
against a concurrent writer, and a reader never sees a partial file.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from service.storage.base import ObjectExists, ObjectNotFound, check_key, sha256_hex


def path_from_file_url(url: str) -> Path:
    """``file://var/store`` -> ``$CWD/var/store``; ``file:///srv/store`` -> ``/srv/store``."""
    if not url.startswith("file://"):
        raise ValueError(f"not a file:// URL: {url!r}")
    rest = unquote(url[len("file://") :])
    if not rest:
        raise ValueError("file:// URL needs a directory")
    return Path(rest).expanduser().resolve()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class LocalStore:
    """Write-once object store in a directory.

    Parameters
    ----------
    url : str
        ``file://DIR``; a relative DIR is resolved against the current directory
        once, here.
    """

    def __init__(self, url: str) -> None:
        self.root = path_from_file_url(url)
        self.url = url
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalStore({self.root})"

    def path_for(self, key: str) -> Path:
        """Local path of ``key`` (whether or not it exists)."""
        return self.root / check_key(key)

    def uri_for(self, key: str) -> str:
        return self.path_for(key).as_uri()

    def key_for(self, uri: str) -> str:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise ValueError(f"{uri!r} is not in {self!r}")
        try:
            rel = Path(unquote(parsed.path)).relative_to(self.root)
        except ValueError:
            raise ValueError(f"{uri!r} is not in {self!r}") from None
        return check_key(rel.as_posix())

    def url_for(self, key: str, expires: int = 3600) -> str:
        return self.uri_for(key)

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def get(self, key: str) -> bytes:
        try:
            return self.path_for(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        *,
        if_none_match: bool = True,
    ) -> str:
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        uri = path.as_uri()
        if if_none_match and path.exists():
            return self._same_or_raise(key, path, data)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if not if_none_match:
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return self._same_or_raise(key, path, data)
                except OSError as exc:  # pragma: no cover - file systems without hard links
                    if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                        raise
                    self._put_exclusive(key, path, data)
            _fsync_dir(path.parent)
            return uri
        finally:
            tmp.unlink(missing_ok=True)

    def _put_exclusive(self, key: str, path: Path, data: bytes) -> None:  # pragma: no cover
        # Fallback without link(2): O_EXCL still refuses to overwrite, but a
        # concurrent reader may see a partial file while it is written.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            self._same_or_raise(key, path, data)
            return
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def _same_or_raise(self, key: str, path: Path, data: bytes) -> str:
        existing = sha256_hex(path.read_bytes())
        if existing != sha256_hex(data):
            raise ObjectExists(key, path.as_uri(), existing)
        return path.as_uri()
