"""Projection outcomes survive the trip across a Lambda invoke."""

import pytest

from grid_reingest.domain.outcome import Failed, NotFound, Ready, TooBig, from_json, to_json


@pytest.mark.parametrize(
    "outcome",
    [
        Ready("a" * 40, b"\x00\x1f\x8b binary \xff", 1234),
        NotFound("b" * 40),
        TooBig("c" * 40, 2_000_000, 1_048_576),
        Failed("d" * 40, "leases", 503, "Service Unavailable", "down for maintenance"),
        Failed("e" * 40, "image-loader", 500, "boom", "End of data reached.", known=True),
        Failed("f" * 40, "cropper", None, "no response"),
    ],
)
def test_outcomes_round_trip_through_json(outcome):
    assert from_json(to_json(outcome)) == outcome


def test_failed_names_its_reason_and_describes_itself():
    failure = Failed("x", "leases", 503, "Service Unavailable", "maintenance")
    assert failure.reason == "leases:503"
    assert failure.describe() == "leases: HTTP 503: Service Unavailable: maintenance"
    assert Failed("x", "usage", None, "timed out").describe() == "usage: no response: timed out"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"outcome": "ready"}, "malformed projection outcome"),
        ({"id": "x", "outcome": "ready", "record": "%%%", "imageBytes": 1}, "malformed"),
        ({"id": "x", "outcome": "teleported"}, "unknown projection outcome 'teleported'"),
    ],
)
def test_malformed_outcomes_are_refused_clearly(payload, message):
    with pytest.raises(ValueError, match=message):
        from_json(payload)
