"""One frame per observation minute, chosen by the gate score; the others keep a reason."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.pipeline.candidates import Candidate
from service.pipeline.select import choose, group_by_minute
from service.sources.gong.archive import remote_frame


@dataclass
class _Verdict:
    accepted: bool
    score: float
    reasons: list[str] = field(default_factory=list)


def _candidate(name: str, score: float | None, accepted: bool = True, reasons: tuple[str, ...] = ()) -> Candidate:
    remote = remote_frame(name, "http://a")
    assert remote is not None
    c = Candidate(remote=remote, frame=object() if score is not None else None,
                  verdict=_Verdict(accepted, score) if score is not None else None)
    for reason in reasons:
        c.reject(reason)
    return c


def test_best_gate_score_wins_and_the_rest_are_not_selected():
    b = _candidate("20261121120014Bh.fits.fz", 0.4)
    l_ = _candidate("20261121120034Lh.fits.fz", 0.9)
    sel = choose([b, l_])
    assert sel.chosen is l_
    assert sel.rejected == [b] and b.reasons == ["not_selected"]


def test_unusable_frames_keep_their_own_reasons():
    good = _candidate("20261121120014Bh.fits.fz", 0.1)
    cloudy = _candidate("20261121120034Lh.fits.fz", 0.9, accepted=False, reasons=("bright_sky",))
    broken = _candidate("20261121120044Ch.fits.fz", None, reasons=("truncated",))
    sel = choose([good, cloudy, broken])
    assert sel.chosen is good
    assert cloudy.reasons == ["bright_sky"] and broken.reasons == ["truncated"]


def test_no_usable_frame_chooses_nothing():
    sel = choose([_candidate("20261121120014Bh.fits.fz", 0.5, accepted=False)])
    assert sel.chosen is None
    assert sel.rejected[0].reasons  # gated out without reasons still says why


def test_ties_go_to_the_earlier_frame_deterministically():
    late = _candidate("20261121120054Th.fits.fz", 0.5)
    early = _candidate("20261121120014Bh.fits.fz", 0.5)
    assert choose([late, early]).chosen is early


def test_same_second_at_two_sites_stays_two_frames():
    frames = [remote_frame(n, "http://a") for n in (
        "20261121120014Bh.fits.fz", "20261121120014Lh.fits.fz", "20261121120114Bh.fits.fz")]
    groups = group_by_minute([f for f in frames if f is not None])
    assert [len(v) for v in groups.values()] == [2, 1]
    assert {f.site for f in next(iter(groups.values()))} == {"BB", "LE"}
