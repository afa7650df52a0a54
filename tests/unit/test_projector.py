"""The projection flow over a stand-in client (no sockets), and found images as outcomes."""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime

import pytest

from grid_reingest.adapters.grid import DATA_CALLS, GridResponse
from grid_reingest.adapters.grid_projector import GridProjector, OutcomeProjector, to_outcome
from grid_reingest.domain.outcome import Failed, Found, NotFound, Ready, TooBig
from grid_reingest.domain.thrall_message import record_size
from grid_reingest.settings import GridSettings, load

SETTINGS = load(GridSettings, {"GRID_DOMAIN_ROOT": "media.example.org", "GRID_API_KEY": "k"})
NOW = datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
IMAGE_ID = "f" * 40


class StubClient:
    """Answers as told: `loader` for the projection, `answers[call]` for data calls."""

    settings = SETTINGS

    def __init__(self, loader: GridResponse, **answers: GridResponse) -> None:
        self.loader = loader
        self.answers = answers
        self.keys: list[str | None] = []

    def with_key(self, api_key: str) -> StubClient:
        self.keys.append(api_key)
        return self

    def projection(self, image_id: str) -> GridResponse:
        return self.loader

    def data(self, call: str, image_id: str) -> GridResponse:
        service = DATA_CALLS[call][0]
        return self.answers.get(call, GridResponse(service, 404))


def found(body) -> GridResponse:
    return GridResponse("image-loader", 200, body=body)


def project(client: StubClient, **kwargs):
    with GridProjector(client, images_at_once=1) as projector:
        return projector.project(IMAGE_ID, **kwargs)


def test_projector_every_service_404_still_finds_the_image():
    result = project(StubClient(found({"id": IMAGE_ID, "metadata": {}})))
    assert isinstance(result, Found)
    assert result.image["leases"] == {"leases": [], "lastModified": None}
    assert json.loads(result.serialized) == result.image
    assert result.image_bytes == len(result.serialized)


def test_projector_loader_404_is_not_found():
    assert project(StubClient(GridResponse("image-loader", 404))) == NotFound(IMAGE_ID)


def test_projector_known_loader_error_only_on_a_500():
    text = '{"errorMessage": "org.im4java.core.CommandException: boom"}'
    for status, known in ((500, True), (502, False)):
        loader = GridResponse("image-loader", status, message="boom", text=text)
        result = project(StubClient(loader))
        assert isinstance(result, Failed)
        assert (result.service, result.status, result.known) == ("image-loader", status, known)


def test_projector_loader_answer_that_is_not_an_object_fails():
    result = project(StubClient(found([1, 2])))
    assert isinstance(result, Failed)
    assert result.message == "projection: not a JSON object"


@pytest.mark.parametrize("body", [{"id": "a" * 40, "metadata": {}}, {"metadata": {}}])
def test_projector_loader_image_of_another_id_is_a_known_failure(body):
    # Given image-loader answering with an image that is not the one asked for
    client = StubClient(found(body), leases=GridResponse("leases", 200, body={"data": {}}))

    # When
    result = project(client)

    # Then it is refused, naming both ids, known (state 4): nothing is merged
    assert isinstance(result, Failed)
    assert (result.service, result.known) == ("image-loader", True)
    assert repr(body.get("id")) in result.message
    assert IMAGE_ID in result.message


def test_projector_oversized_answer_fails_naming_the_call():
    loader = GridResponse("image-loader", 200, message="answer too large: ...", oversized=True)
    result = project(StubClient(loader))
    assert isinstance(result, Failed)
    assert (result.status, result.message) == (200, "projection: answer too large")


def test_projector_reports_the_first_failed_call_in_a_fixed_order():
    # Given two failing services
    client = StubClient(
        found({"id": IMAGE_ID}),
        usages=GridResponse("usage", 500, message="usage down"),
        leases=GridResponse("leases", 503, message="leases down"),
    )

    # When / Then leases (first in DATA_CALLS) is the one reported, every time
    for _ in range(5):
        result = project(client)
        assert (result.service, result.status, result.downstream_message) == (
            "leases",
            503,
            "leases down",
        )


def test_projector_data_without_envelope_fails_naming_the_service():
    client = StubClient(found({"id": IMAGE_ID}), crops=GridResponse("cropper", 200, body=[]))
    result = project(client)
    assert isinstance(result, Failed)
    assert (result.service, result.message) == ("cropper", "crops: unexpected response")


def test_projector_misshapen_data_fails_naming_the_service():
    client = StubClient(
        found({"id": IMAGE_ID}), crops=GridResponse("cropper", 200, body={"data": [{"date": 1}]})
    )
    result = project(client)
    assert isinstance(result, Failed)
    assert (result.service, result.status) == ("cropper", 200)
    assert "crops" in result.message


def test_projector_uses_the_given_key():
    client = StubClient(found({"id": IMAGE_ID}))
    project(client, api_key="callers-key")
    assert client.keys == ["callers-key"]


# -- outcomes ---------------------------------------------------------------------


def found_image(extra: str = "") -> Found:
    image = {"id": IMAGE_ID, "metadata": {"title": "T"}, "extra": extra}
    return Found(IMAGE_ID, image, json.dumps(image).encode())


def test_to_outcome_ready_record_decodes_to_the_message():
    # Given a found image, and a clock
    projection = found_image()

    # When
    outcome = to_outcome(projection, 1024 * 1024, clock=lambda: NOW)

    # Then the record is 0x00 + gzip(JSON message)
    assert isinstance(outcome, Ready)
    assert outcome.record[:1] == b"\x00"
    message = json.loads(gzip.decompress(outcome.record[1:]))
    assert message == {
        "subject": "reingest-image",
        "image": projection.image,
        "lastModified": "2024-05-01T10:00:00.123Z",
    }
    assert outcome.image_bytes == projection.image_bytes


def test_to_outcome_too_big_counts_data_and_partition_key():
    # Given an image whose record is just over the limit
    noise = random.Random(1).randbytes(3000).hex()
    outcome = to_outcome(found_image(noise), 1024 * 1024, clock=lambda: NOW)
    size = record_size(IMAGE_ID, outcome.record)

    # When the limit is the record's size, it fits; one byte less and it does not
    assert isinstance(to_outcome(found_image(noise), size, clock=lambda: NOW), Ready)
    too_big = to_outcome(found_image(noise), size - 1, clock=lambda: NOW)
    assert too_big == TooBig(IMAGE_ID, size, size - 1)


@pytest.mark.parametrize(
    "projection", [NotFound(IMAGE_ID), Failed(IMAGE_ID, "leases", 500, "leases failed")]
)
def test_to_outcome_passes_other_projections_through(projection):
    assert to_outcome(projection, 1024) is projection


def test_outcome_projector_gives_outcomes():
    client = StubClient(found({"id": IMAGE_ID}))
    with GridProjector(client, images_at_once=1) as projector:
        outcome = OutcomeProjector(projector, 1024 * 1024, clock=lambda: NOW).project(IMAGE_ID)
    assert isinstance(outcome, Ready)


def test_projector_refuses_a_reserved_id_before_any_call():
    # Given a client that would answer for any id
    client = StubClient(found({"id": "~control", "metadata": {}}))
    client.projection = None  # a call would raise
    # When the control item's key reaches the projector as if it were an image
    with GridProjector(client, images_at_once=1) as projector:
        result = projector.project("~control")
    # Then it is a known failure (retrying cannot help), and nothing was asked of the Grid
    assert isinstance(result, Failed)
    assert result.known
    assert "starts with '~'" in result.message
