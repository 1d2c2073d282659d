"""The service image, built here with podman and run by the deploy tests (pytest plugin).

No container registry is reachable, so the base image is made locally: a
``debootstrap --variant=minbase`` Debian 12 with python3 (what
``deploy/container/Containerfile`` needs from ``python:3.11-slim``), imported
with ``podman import``. The Containerfile is then built with that base as
``BASE_IMAGE``; pip inside the build reaches PyPI through the host's CA bundle,
passed as the build secret ``pip-ca``.

podman runs as root with ``runc``, the ``cgroupfs`` manager, the ``file``
events logger (no systemd here) and ulimits below this machine's hard limits,
all from a ``containers.conf`` named by ``CONTAINERS_CONF`` for the podman
processes the tests start.

Fixtures
--------
podman
    Session-scoped :class:`Podman`: ``run(*args)`` runs ``podman`` with that config.
base_image
    Session-scoped tag of the debootstrap base (built once; reused while an
    image of the same recipe exists in the local storage).
synmag_image
    Session-scoped :class:`BuiltImage` of the ``cpu`` target, built once per
    session (``seconds`` it took, ``size_mb``), removed at the end.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, require

CONTAINERFILE = REPO_ROOT / "deploy" / "container" / "Containerfile"
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# python3-venv: the Containerfile makes a venv; ca-certificates: pip's TLS.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Left out of the base: what apt downloaded and documentation (about 140 MB of 275 MB).
BASE_TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
             "usr/share/locale", "usr/share/info")
CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
TIMINGS: dict[str, str] = {}  # printed in the terminal summary (CI logs keep the figures)


def _sbin_which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


@dataclass
class Podman:
    """The ``podman`` binary and the environment that configures it."""

    binary: str
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 120, check: bool = True,
            **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Run ``podman ARGS``; on ``check`` a non-zero exit fails the test with its output."""
        res = subprocess.run([self.binary, *args], env=self.env, capture_output=True, text=True,
                             timeout=timeout, **kwargs)  # type: ignore[call-overload]
        if check and res.returncode != 0:
            pytest.fail(f"podman {' '.join(args[:3])} ... exited {res.returncode}:\n"
                        f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
        return res

    def image_exists(self, tag: str) -> bool:
        return self.run("image", "exists", tag, check=False).returncode == 0


@dataclass
class BuiltImage:
    tag: str
    seconds: float
    size_mb: float


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    binary = shutil.which("podman")
    require(binary is not None, "podman is not installed (apt-get install podman buildah runc)")
    require(shutil.which("runc") is not None, "runc is not installed (apt-get install runc)")
    require(os.geteuid() == 0, "the image tests run podman as root (debootstrap needs root)")
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return Podman(binary, {**os.environ, "CONTAINERS_CONF": str(conf)})


def _recipe_tag() -> str:
    recipe = "|".join((DEBIAN_SUITE, DEBIAN_MIRROR, *BASE_PACKAGES, *BASE_TRIM))
    return f"localhost/synmag-test-base:{DEBIAN_SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:8]}"


@pytest.fixture(scope="session")
def base_image(podman: Podman) -> str:
    """A minimal Debian with python3, made by debootstrap and imported into podman."""
    tag = _recipe_tag()
    if podman.image_exists(tag):
        TIMINGS["base image"] = f"{tag} (already built)"
        return tag
    debootstrap = _sbin_which("debootstrap")
    require(debootstrap is not None, "debootstrap is not installed (apt-get install debootstrap)")
    # On tmpfs dpkg's fsyncs cost nothing: the base installs in about 2 min instead of 3.
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and shutil.disk_usage(shm).free > 2**30 else None
    root = Path(tempfile.mkdtemp(prefix="synmag-debootstrap-", dir=parent))
    start = time.monotonic()
    try:
        res = subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
             DEBIAN_SUITE, str(root / "rootfs"), DEBIAN_MIRROR],
            capture_output=True, text=True, timeout=900,
        )
        if res.returncode != 0:
            pytest.fail(f"debootstrap failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
        for sub in BASE_TRIM:
            shutil.rmtree(root / "rootfs" / sub, ignore_errors=True)
            (root / "rootfs" / sub).mkdir(parents=True, exist_ok=True)
        with subprocess.Popen(["tar", "-C", str(root / "rootfs"), "-c", "."],
                              stdout=subprocess.PIPE) as tar:
            podman.run("import", "--change", 'CMD ["python3"]', "-", tag, stdin=tar.stdout, timeout=300)
        assert tar.returncode == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)
    TIMINGS["base image"] = f"{tag}: debootstrap + import {time.monotonic() - start:.0f} s"
    return tag


def _ca_bundle() -> str | None:
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"), *CA_BUNDLES):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def build_args(base: str, target: str, tag: str) -> list[str]:
    """``podman build`` arguments for one target of the Containerfile (from the repo root)."""
    args = ["build", "--format", "docker",  # docker format: OCI images drop HEALTHCHECK
            "--layers=false", "--pull=never", "--target", target,
            "--build-arg", f"BASE_IMAGE={base}", "-f", str(CONTAINERFILE), "-t", tag]
    ca = _ca_bundle()
    if ca:
        args += ["--secret", f"id=pip-ca,src={ca}"]
    return [*args, str(REPO_ROOT)]


@pytest.fixture(scope="session")
def synmag_image(podman: Podman, base_image: str) -> Iterator[BuiltImage]:
    """The CPU image built from this checkout, once per session."""
    tag = f"localhost/synmag:test-cpu-{uuid.uuid4().hex[:8]}"
    start = time.monotonic()
    podman.run(*build_args(base_image, "cpu", tag), timeout=1800)
    seconds = time.monotonic() - start
    size = int(podman.run("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
    image = BuiltImage(tag, seconds, size / 1e6)
    TIMINGS["synmag image"] = f"cpu target built in {seconds:.0f} s, {image.size_mb:.0f} MB"
    try:
        yield image
    finally:
        podman.run("rmi", "-f", tag, check=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("deploy images")
        for name, line in TIMINGS.items():
            terminalreporter.write_line(f"{name}: {line}")
