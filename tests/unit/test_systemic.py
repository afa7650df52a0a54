"""Whose failure it is: the image's own or the system's (domain/systemic.py)."""

from __future__ import annotations

import pytest

from grid_reingest.domain.systemic import Cause, Judge, Rules, Symptom, Verdict, cause_of

USAGE_503 = Symptom("usage", Cause.OVERLOAD)
CROPPER_500 = Symptom("cropper", Cause.ERROR)


@pytest.mark.parametrize(
    ("status", "infrastructure", "cause"),
    [
        (None, False, Cause.NO_ANSWER),
        (401, False, Cause.REFUSED),
        (403, False, Cause.REFUSED),
        (429, False, Cause.OVERLOAD),
        (503, False, Cause.OVERLOAD),
        (504, False, Cause.OVERLOAD),
        (500, False, Cause.ERROR),
        (500, True, Cause.OVERLOAD),
        (400, False, Cause.OTHER),
    ],
)
def test_cause_of_each_status(status, infrastructure, cause):
    assert cause_of(status, infrastructure=infrastructure) is cause


def judge_with(failures: int, served: int, symptom: Symptom = USAGE_503) -> Judge:
    judge = Judge(Rules(window=20, min_results=20))
    for _ in range(served):
        judge.served()
    for _ in range(failures):
        judge.failed(symptom)
    return judge


def test_judge_a_service_serving_others_makes_the_failure_the_images_own():
    # Given a window where usage failed 2 images of 20
    judge = judge_with(failures=2, served=18)
    # Then no probe is needed: the image's own
    assert judge.verdict(USAGE_503, None) is Verdict.OWN


def test_judge_when_the_window_cannot_tell_the_probe_decides():
    # Given every image of the window failing at usage (the tail of a pass, or an outage)
    judge = judge_with(failures=20, served=0)
    # Then without a probe's answer it stays open; the probe's answer decides
    assert judge.verdict(USAGE_503, None) is Verdict.OPEN
    assert judge.verdict(USAGE_503, True) is Verdict.OWN
    assert judge.verdict(USAGE_503, False) is Verdict.SYSTEMIC


def test_judge_a_refused_key_is_the_systems_whatever_else():
    judge = judge_with(failures=1, served=19, symptom=Symptom("leases", Cause.REFUSED))
    assert judge.verdict(Symptom("leases", Cause.REFUSED), True) is Verdict.SYSTEMIC


def test_judge_without_a_probe_the_window_must_be_full_to_call_it_systemic():
    # Given 5 failures only: not enough to call it the system's before the invocation ends
    few = judge_with(failures=5, served=0)
    assert few.without_probe(USAGE_503, final=False) is Verdict.OPEN
    assert few.without_probe(USAGE_503, final=True) is Verdict.OWN
    # A full window of failures is the system's
    assert judge_with(failures=20, served=0).without_probe(USAGE_503, final=False) is (
        Verdict.SYSTEMIC
    )


def test_judge_overload_stops_the_invocation_only_across_most_images():
    # Overload from a quarter of the window slows the pace; from most of it, it stops
    assert not judge_with(failures=5, served=15).stops(USAGE_503)
    assert judge_with(failures=15, served=5).stops(USAGE_503)
    # Any other failure of the system's stops it at once
    assert judge_with(failures=5, served=15, symptom=CROPPER_500).stops(CROPPER_500)


def test_judge_shares_are_per_service():
    judge = judge_with(failures=10, served=10)
    judge.failed(CROPPER_500)
    # (the oldest of the window, a served image, made room)
    assert judge.share("usage") == pytest.approx(10 / 20)
    assert judge.share("cropper") == pytest.approx(1 / 20)
