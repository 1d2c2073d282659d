"""The CPU image, built from this checkout, run as two replicas against real servers.

Two containers of the image (``--network host``, read-only root file system, the
bundled model inside) on the suite's PostgreSQL and SeaweedFS, fed by the replay
archive: one leads, both serve the API, products appear once each, and
``podman stop`` (SIGTERM through the image's init) ends each within seconds.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests.commands.test_serve_e2e import (  # noqa: F401 - cluster and val_source are fixtures
    Db,
    _minute_key,
    cluster,
    metric,
    published_minutes,
    val_source,
    wait_for,
)
from tests.conftest import REPO_ROOT
from tests.servers.podman import TIMINGS, BuiltImage, Podman

# The first test builds the base and the image (about 10 min on 2 busy cores) in its setup.
pytestmark = [pytest.mark.slow, pytest.mark.servers, pytest.mark.timeout(2400)]

MINUTES = 6
# `podman stop -t 60` sends SIGTERM, then SIGKILL (exit 137) after 60 s. synmag first finishes the
# running minute: 2-3 s on an idle machine, 16.5 s measured here on 2 cores at load 10.
STOP_WITHIN_S = 45.0


def _in_image(podman: Podman, image: BuiltImage, code: str) -> str:
    return podman.run("run", "--rm", "--network", "none", "--entrypoint", "python3", image.tag,
                      "-c", code).stdout


def test_image_runs_as_non_root_with_an_init_and_a_healthcheck(podman, synmag_image):
    data = json.loads(podman.run("image", "inspect", synmag_image.tag).stdout)[0]
    config = data["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["dumb-init", "--", "synmag"] and config["Cmd"] == ["serve"]
    health = data.get("Healthcheck") or config.get("Healthcheck")  # podman: top level, docker: Config
    assert "/healthz" in " ".join(health["Test"])
    assert "8080/tcp" in config["ExposedPorts"]


def test_image_holds_the_bundled_model_and_no_torch(podman, synmag_image):
    out = _in_image(podman, synmag_image, (
        "import importlib.metadata as md, importlib.util as u, json\n"
        "from service.settings import load_settings\n"
        "s = load_settings()\n"
        "print(json.dumps({'torch': u.find_spec('torch') is not None,\n"
        "  'ort': sorted(d.metadata['Name'] for d in md.distributions() if 'onnxruntime' in d.metadata['Name']),\n"
        "  'models': sorted(p.name for p in s.bundled_model_dir.glob('*.onnx')),\n"
        "  'providers': s.providers}))"
    ))
    found = json.loads(out.strip().splitlines()[-1])
    assert found["torch"] is False
    assert found["ort"] == ["onnxruntime"]  # the cpu extra only, never onnxruntime-gpu beside it
    assert found["models"] == sorted(p.name for p in (REPO_ROOT / "models").glob("*.onnx"))
    assert found["providers"] == ["CPUExecutionProvider"]


def _env_file(tmp: Path, archive: str, database_url: str, seaweedfs, bucket: str) -> Path:
    """One env file for both replicas, as in deploy/compose.yaml (no SYNMAG_MODEL: the bundled one)."""
    env = {
        "SYNMAG_GONG_BASE_URL": archive,
        "SYNMAG_DATABASE_URL": database_url,
        "SYNMAG_STORE_URL": f"s3://{bucket}/drill",
        **seaweedfs.env(),
        "SYNMAG_TICK_SECONDS": "2",
        "SYNMAG_MINUTES_PER_TICK": "3",
        "SYNMAG_CATCHUP_HOURS": "2",
        "SYNMAG_HTTP_TIMEOUT_S": "10",
        "SYNMAG_HTTP_BACKOFF_BASE_S": "0.2",
        "SYNMAG_HTTP_BACKOFF_CAP_S": "1.0",
    }
    path = tmp / "synmag.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return path


class Replica:
    def __init__(self, podman: Podman, image: BuiltImage, name: str, env_file: Path, port: int):
        self.podman, self.name, self.api = podman, name, f"http://127.0.0.1:{port}"
        podman.run(
            "run", "-d", "--name", name, "--network", "host", "--env-file", str(env_file),
            "-e", f"SYNMAG_API_PORT={port}",
            # as in deploy/k8s: read-only root, the home (caches) and /tmp writable (U: owned by 10001)
            "--read-only", "--tmpfs", "/var/lib/synmag:rw,U", "--tmpfs", "/tmp:rw,mode=1777",
            "--health-interval", "disable",  # no systemd timers here; `healthcheck run` below
            image.tag,
        )

    def logs(self) -> str:
        res = self.podman.run("logs", "--tail", "40", self.name, check=False)
        return res.stdout + res.stderr

    def leader(self) -> float:
        return metric(self.api, "synmag_scheduler_leader")

    def stop(self) -> tuple[float, int]:
        """``podman stop``: seconds it took and the container's exit code."""
        start = time.monotonic()
        self.podman.run("stop", "-t", "60", self.name, timeout=90)
        took = time.monotonic() - start
        code = self.podman.run("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout.strip()
        return took, int(code)


def _create_bucket_as_compose_does(podman: Podman, image: BuiltImage, env_file: Path) -> None:
    """Run deploy/compose.yaml's one-shot ``bucket`` service (entrypoint and command) in the image."""
    bucket = yaml.safe_load((REPO_ROOT / "deploy" / "compose.yaml").read_text())["services"]["bucket"]
    entrypoint, *args = bucket["entrypoint"]
    podman.run("run", "--rm", "--network", "host", "--env-file", str(env_file),
               "--entrypoint", entrypoint, image.tag, *args, *bucket["command"], timeout=180)


def test_two_containers_one_leader_products_once_and_quick_stops(
    podman, synmag_image, cluster, val_source, postgres_url, seaweedfs, tmp_path  # noqa: F811
):
    from tests.servers.postgres import free_port

    run_id = uuid.uuid4().hex[:8]
    bucket = f"synmag-drill-{run_id}"
    archive = cluster.replay(val_source, "--cadence", "4", "--rewind", "20", "--backlog", "1",
                             "--limit", str(MINUTES))
    env_file = _env_file(tmp_path, archive, postgres_url, seaweedfs, bucket)
    _create_bucket_as_compose_does(podman, synmag_image, env_file)
    assert bucket in [b["Name"] for b in seaweedfs.client().list_buckets()["Buckets"]]
    names = [f"synmag-drill-{run_id}-{x}" for x in "ab"]
    replicas: list[Replica] = []
    db = Db(postgres_url)
    started = time.monotonic()
    try:
        for name in names:
            replicas.append(Replica(podman, synmag_image, name, env_file, free_port()))
        a, b = replicas
        logs = lambda: "\n".join(f"--- {r.name}\n{r.logs()}" for r in replicas)  # noqa: E731
        for r in replicas:
            wait_for(lambda r=r: httpx.get(r.api + "/healthz", timeout=2).status_code == 200, 180,
                     f"{r.name}'s API\n{logs()}")
            assert podman.run("healthcheck", "run", r.name, check=False).returncode == 0, logs()
        wait_for(lambda: a.leader() + b.leader() == 1, 30, f"one leader\n{logs()}")
        leader, follower = (a, b) if a.leader() == 1 else (b, a)
        wait_for(lambda: len(db.products()) >= 2, 180, f"two products\n{logs()}")
        to_two = time.monotonic() - started
        for r in replicas:  # both serve the feed: the follower reads what the leader stored
            latest = httpx.get(r.api + "/v1/magnetograms/latest", timeout=10)
            assert latest.status_code == 200, latest.text
            fits = httpx.get(r.api + f"/v1/magnetograms/{latest.json()['id']}.fits", timeout=30,
                             follow_redirects=True)
            assert fits.status_code == 200 and fits.content[:6] == b"SIMPLE"
            wait_for(lambda r=r: httpx.get(r.api + "/readyz", timeout=10).status_code == 200, 30,
                     f"{r.name} ready")

        took, code = leader.stop()  # SIGTERM: the running minute ends, the lock is released
        assert (took < STOP_WITHIN_S, code) == (True, 0), f"{took:.1f} s, exit {code}\n{leader.logs()}"
        stops = [took]
        assert "stopped in" in leader.logs()
        wait_for(lambda: follower.leader() == 1, 30, f"the follower to take over\n{logs()}")
        wait_for(lambda: len(published_minutes(archive)) == MINUTES, 90, "the replay's last minute")
        expected = published_minutes(archive)
        wait_for(lambda: expected <= db.final_minutes(), 180, f"every minute done\n{logs()}")
        took, code = follower.stop()
        assert (took < STOP_WITHIN_S, code) == (True, 0), f"{took:.1f} s, exit {code}\n{follower.logs()}"
        stops.append(took)
        TIMINGS["drill"] = (f"{len(expected)} minutes, two products {to_two:.0f} s after the start, "
                            f"podman stop {stops[0]:.1f} s (leader) and {stops[1]:.1f} s (follower), "
                            f"{time.monotonic() - started:.0f} s in all")

        products = db.products()
        minutes = [_minute_key(p.obs_minute) for p in products]
        assert sorted(minutes) == sorted(expected)  # one product per minute, none lost
        # no prior source in the drill's env: the H-alpha-only model serves every minute
        assert {p.model_version for p in products} == {_bundled_versions(db)["halpha"]}
        runs = db.rows("SELECT detail FROM runs")
        assert not [r for r in runs if '"outcome":"exists"' in (r[0] or "")]  # no minute made twice
        keys = [o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert len([k for k in keys if k.endswith(".fits") and "/products/" in f"/{k}"]) == len(products)
    finally:
        db.close()
        for name in names:
            podman.run("rm", "-f", "-t", "0", name, check=False)


def _bundled_versions(db: Db) -> dict[str, str]:
    """The production version of each kind: the image's two bundled models."""
    rows = db.rows("SELECT kind, version FROM model_versions WHERE status = 'production'")
    by_kind = {kind: version for kind, version in rows}
    assert len(rows) == 2 and set(by_kind) == {"halpha", "nowcast"}, rows
    return by_kind
