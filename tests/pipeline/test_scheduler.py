"""Catch-up planning, the leader lock, and the APScheduler job's settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.pipeline.catchup import MinuteInfo, plan
from service.pipeline.leader import FileLock, Leadership
from service.sources.base import RemoteFrame
from service.sources.gong.archive import remote_frame

NOW = datetime(2026, 11, 21, 12, 0, 40, tzinfo=UTC)


def _listed(*minutes_ago: int) -> list[RemoteFrame]:
    out = []
    for m in minutes_ago:
        t = (NOW - timedelta(minutes=m)).replace(second=14)
        for letter, second in (("B", 14), ("L", 34)):
            frame = remote_frame(f"{t.replace(second=second):%Y%m%d%H%M%S}{letter}h.fits.fz", "http://a")
            assert frame is not None
            out.append(frame)
    return out


def _minute(ago: int) -> datetime:
    return (NOW - timedelta(minutes=ago)).replace(second=0)


def _plan(listed, states=None, limit=5, hours=6.0, model_loaded=True, seen_ago=60.0):
    first_seen = {f.minute: NOW - timedelta(seconds=seen_ago) for f in listed}
    return plan(listed, states or {}, NOW, since=NOW - timedelta(hours=hours), settle_s=10,
                limit=limit, model_loaded=model_loaded, first_seen=first_seen)


def test_a_minute_is_taken_settle_seconds_after_its_first_frame_was_listed():
    assert _plan(_listed(1), seen_ago=5)[0] == []  # listed 5 s ago: others may still appear
    assert _plan(_listed(1), seen_ago=11)[0] == [_minute(1)]  # not 90 s after the minute ends


def test_without_a_record_of_its_listing_a_minute_waits_until_every_frame_is_public():
    listed = _listed(1, 3)
    minutes, _ = plan(listed, {}, NOW, since=NOW - timedelta(hours=6), settle_s=10, limit=5, model_loaded=True)
    assert minutes == [_minute(3)]  # minute 1 may still gain frames (published up to 80 s late)


def test_newest_first_and_bounded_per_tick():
    minutes, due = _plan(_listed(*range(0, 20)), limit=3)
    assert minutes == [_minute(1), _minute(2), _minute(3)]  # the current minute is not over
    assert due == 19


def test_minutes_with_a_final_state_are_not_redone():
    states = {_minute(2): MinuteInfo("done", None, None), _minute(3): MinuteInfo("rejected", None, "x")}
    minutes, _ = _plan(_listed(2, 3, 4), states)
    assert minutes == [_minute(4)]


def test_retries_wait_for_their_backoff():
    states = {_minute(2): MinuteInfo("pending", NOW + timedelta(seconds=30), "retry"),
              _minute(3): MinuteInfo("pending", NOW - timedelta(seconds=1), "retry")}
    minutes, _ = _plan(_listed(2, 3), states)
    assert minutes == [_minute(3)]


def test_catchup_window_limits_how_far_back():
    minutes, _ = _plan(_listed(5, 200), hours=1.0)
    assert minutes == [_minute(5)]


def test_minutes_skipped_for_want_of_a_model_are_redone_once_one_is_loaded():
    states = {_minute(2): MinuteInfo("skipped", None, "no_model")}
    assert _plan(_listed(2), states, model_loaded=False)[0] == []
    assert _plan(_listed(2), states, model_loaded=True)[0] == [_minute(2)]


def test_file_lock_admits_one_leader_until_released(tmp_path):
    a, b = Leadership(FileLock(tmp_path / "db.lock")), Leadership(FileLock(tmp_path / "db.lock"))
    assert a.check() is True
    assert b.check() is False
    assert a.check() is True  # re-checked each tick, still ours
    a.release()
    assert b.check() is True


def test_scheduler_job_coalesces_and_runs_one_instance(tmp_path):
    from types import SimpleNamespace

    from service.pipeline.scheduler import JOB_ID, PipelineScheduler
    from service.settings import Settings

    settings = Settings(tick_seconds=3600, misfire_grace_s=7)
    sched = PipelineScheduler(SimpleNamespace(settings=settings), Leadership(FileLock(tmp_path / "l")))
    sched.tick = lambda: None  # type: ignore[method-assign]  # only the job's settings matter here
    sched.start()
    try:
        job = sched._scheduler.get_job(JOB_ID)
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 7)
        assert job.trigger.interval == timedelta(seconds=3600)
    finally:
        sched.stop()
