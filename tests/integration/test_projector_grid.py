"""Projecting images from the simulated Grid, over real HTTP."""

from __future__ import annotations

import gzip
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from devtools.grid_server import BARE, GridSim, Profile
from devtools.servers import free_port
from grid_reingest.adapters.grid import DATA_CALLS, GridClient
from grid_reingest.adapters.grid_projector import GridProjector, to_outcome
from grid_reingest.domain.isotime import parse_instant
from grid_reingest.domain.outcome import Failed, Found, NotFound, Ready, TooBig
from grid_reingest.settings import KINESIS_RECORD_MAX_BYTES

IMAGE_ID = "5f0c3a9d2e7b41c6a8d0e9f1b2c3d4e5f6a7b8c9"
NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
EVERYTHING = Profile(
    leases=2, crops=3, usages=2, collections=2, edits=True, syndication=True, soft_delete="deleted"
)


def projector_for(sim: GridSim, images_at_once: int = 1, **env: str) -> GridProjector:
    return GridProjector(
        GridClient(sim.settings(**env), sim.api_key), images_at_once=images_at_once
    )


def test_projector_merges_every_service(grid):
    # Given an image every data service knows something about
    grid.profiles[IMAGE_ID] = EVERYTHING
    data = grid.service_data(IMAGE_ID)
    loader = grid.image(IMAGE_ID)

    # When
    with projector_for(grid) as projector:
        result = projector.project(IMAGE_ID)

    # Then each service's data is on the image
    assert isinstance(result, Found)
    image = result.image
    assert image["leases"] == data["leases"]
    assert image["collections"] == data["collections"]
    assert image["exports"] == data["crops"]
    assert image["usages"] == [entity["data"] for entity in data["usages"]]
    assert image["userMetadata"] == data["edits"]
    assert image["syndicationRights"] == data["syndication"]
    assert image["softDeletedMetadata"]["deletedBy"] == data["soft_delete"]["deletedBy"]
    # the latest date of all, as a UTC instant with milliseconds
    dates = [data["leases"]["lastModified"], data["edits"]["lastModified"]]
    dates += [c["date"] for c in data["crops"]]
    dates += [c["actionData"]["date"] for c in data["collections"]]
    dates += [u["data"]["lastModified"] for u in data["usages"]]
    latest = max(parse_instant(d) for d in dates)
    assert parse_instant(image["lastModified"]) == latest
    assert image["lastModified"].endswith("Z")
    # and what the merge does not set came through as the loader sent it
    for key in ("simFutureField", "fileMetadata", "originalMetadata", "source", "identifiers"):
        assert image[key] == loader[key]
    assert json.loads(result.serialized) == image


def test_projector_image_no_service_knows(grid):
    # Given an image with no leases, crops, usages, collections, edits or anything else
    grid.profiles[IMAGE_ID] = BARE

    # When
    with projector_for(grid) as projector:
        result = projector.project(IMAGE_ID)

    # Then it is found, with empty service fields and no lastModified
    assert isinstance(result, Found)
    image = result.image
    assert image["leases"] == {"leases": [], "lastModified": None}
    assert image["collections"] == image["usages"] == image["exports"] == []
    for absent in ("userMetadata", "syndicationRights", "softDeletedMetadata", "lastModified"):
        assert absent not in image
    assert image["metadata"] == grid.image(IMAGE_ID)["metadata"]


def test_projector_calls_the_seven_services_at_once():
    # Given the loader at 200 ms and every data service at 100 ms (700 ms one by one)
    with GridSim(latency={"image-loader": 0.2}, default_latency=0.1) as sim:
        with projector_for(sim) as projector:
            # When
            result = projector.project(IMAGE_ID)

        # Then the seven data calls were in flight together
        assert isinstance(result, Found)
        assert sim.peak["total"] == len(DATA_CALLS)


def test_projector_many_images_at_once_do_not_wait_for_each_other():
    # Given 8 images projected at once, each 200 ms + 1 s at best
    ids = [f"{i:040x}" for i in range(8)]
    with GridSim(latency={"image-loader": 0.2}, default_latency=1.0) as sim:
        with projector_for(sim, images_at_once=8) as projector, ThreadPoolExecutor(8) as images:
            # When
            results = list(images.map(projector.project, ids))

        # Then the data calls of several images were in flight together (their
        # exact overlap depends on scheduling; the timing is a benchmark's job)
        assert all(isinstance(r, Found) for r in results)
        assert sim.peak["total"] > 3 * len(DATA_CALLS)


# -- failures ----------------------------------------------------------------------


def test_projector_loader_404_is_not_found(grid):
    grid.missing.add(IMAGE_ID)
    with projector_for(grid) as projector:
        assert projector.project(IMAGE_ID) == NotFound(IMAGE_ID)
    assert sum(grid.endpoint_counts[call] for call in DATA_CALLS) == 0


def test_projector_known_loader_error(grid):
    grid.known_loader_error(IMAGE_ID)
    with projector_for(grid) as projector:
        result = projector.project(IMAGE_ID)
    assert isinstance(result, Failed)
    assert (result.service, result.status, result.known) == ("image-loader", 500, True)
    assert "org.im4java.core.CommandException" in result.downstream_message


def test_projector_unknown_loader_error(grid):
    grid.unknown_loader_error(IMAGE_ID)
    with projector_for(grid) as projector:
        result = projector.project(IMAGE_ID)
    assert result == Failed(
        IMAGE_ID, "image-loader", 500, "projection failed", "Something went wrong", False
    )


@pytest.mark.parametrize("call", sorted(DATA_CALLS))
def test_projector_data_service_500_fails_naming_it(grid, call):
    grid.profiles[IMAGE_ID] = EVERYTHING
    grid.fail(IMAGE_ID, call, 500, {"errorKey": "boom", "errorMessage": f"{call} broke"})
    with projector_for(grid) as projector:
        result = projector.project(IMAGE_ID)
    assert isinstance(result, Failed)
    assert (result.service, result.status) == (DATA_CALLS[call][0], 500)
    assert result.message == f"{call} failed"
    assert result.downstream_message == f"{call} broke"
    assert not result.known


@pytest.mark.parametrize(
    ("endpoint", "service"),
    [("projection", "image-loader"), ("leases", "leases"), ("usages", "usage")],
)
def test_projector_malformed_json_fails_clearly(grid, endpoint, service):
    grid.malformed(IMAGE_ID, endpoint)
    with projector_for(grid) as projector:
        result = projector.project(IMAGE_ID)
    assert isinstance(result, Failed)
    assert (result.service, result.status) == (service, 200)
    assert result.describe().startswith(f"{service}: HTTP 200: {endpoint}: malformed JSON: ")


def test_projector_connection_refused(grid):
    port = free_port()
    with projector_for(grid, GRID_IMAGE_LOADER_URL=f"http://127.0.0.1:{port}") as projector:
        result = projector.project(IMAGE_ID)
    assert isinstance(result, Failed)
    assert (result.service, result.status) == ("image-loader", None)
    assert "ConnectionError" in result.downstream_message


def test_projector_loader_slower_than_its_timeout(grid):
    grid.slow(IMAGE_ID, "projection", 1.5)
    with projector_for(grid, GRID_LOADER_TIMEOUT_SECONDS="1") as projector:
        result = projector.project(IMAGE_ID)
    assert isinstance(result, Failed)
    assert (result.service, result.status) == ("image-loader", None)
    assert "deadline of 1 s (GRID_LOADER_TIMEOUT_SECONDS)" in result.describe()


def test_projector_data_service_503_twice_then_fine(grid):
    grid.fail(IMAGE_ID, "collections", 503, times=2)
    with projector_for(grid) as projector:
        assert isinstance(projector.project(IMAGE_ID), Found)
    assert grid.endpoint_counts["collections"] == 3


def test_projector_with_a_refused_key(grid):
    projector = GridProjector(GridClient(grid.settings(), "wrong"), images_at_once=1)
    with projector:
        result = projector.project(IMAGE_ID)
    assert (result.service, result.status) == ("image-loader", 401)


# -- outcomes -----------------------------------------------------------------------


def test_projector_huge_image_is_too_big(grid):
    grid.huge.add(IMAGE_ID)
    with projector_for(grid) as projector:
        outcome = to_outcome(projector.project(IMAGE_ID), KINESIS_RECORD_MAX_BYTES, lambda: NOW)
    assert isinstance(outcome, TooBig)
    assert outcome.record_bytes > KINESIS_RECORD_MAX_BYTES


def test_projector_ready_record_decodes_to_the_projected_image(grid):
    grid.profiles[IMAGE_ID] = EVERYTHING
    with projector_for(grid) as projector:
        projection = projector.project(IMAGE_ID)
    outcome = to_outcome(projection, KINESIS_RECORD_MAX_BYTES, lambda: NOW)
    assert isinstance(outcome, Ready)
    assert outcome.record[0] == 0
    message = json.loads(gzip.decompress(outcome.record[1:]))
    assert message["subject"] == "reingest-image"
    assert message["lastModified"] == "2024-05-01T10:00:00.000Z"
    assert message["image"] == projection.image


# -- the loader's image must be the one asked for; ids and answers within bounds ---------

OTHER_ID = "0" * 39 + "b"


def test_projector_loader_answering_with_another_image_is_a_known_failure(grid):
    # Given image-loader answering the projection of IMAGE_ID with OTHER_ID's image
    grid.profiles[IMAGE_ID] = EVERYTHING
    grid.answers_with(IMAGE_ID, OTHER_ID)

    # When
    with projector_for(grid) as projector:
        result = projector.project(IMAGE_ID)

    # Then a known failure naming both ids, and nothing of IMAGE_ID was fetched to merge
    assert isinstance(result, Failed)
    assert (result.service, result.status, result.known) == ("image-loader", 200, True)
    assert IMAGE_ID in result.message and OTHER_ID in result.message
    assert set(grid.endpoint_counts) == {"projection"}


@pytest.mark.parametrize("image_id", ["..", ".", "a b", "f" * 257])
def test_projector_unusable_id_is_a_known_failure_without_any_call(grid, image_id):
    with projector_for(grid) as projector:
        result = projector.project(image_id)

    assert isinstance(result, Failed)
    assert (result.status, result.known) == (400, True)
    assert result.message.startswith("not an image id")
    assert sum(grid.counts.values()) == 0


def test_projector_loader_answer_over_the_cap_fails_the_image(grid):
    grid.oversized(IMAGE_ID, "projection", 8 * 1024 * 1024, declare_length=False)

    with projector_for(grid, GRID_MAX_LOADER_BODY_BYTES=str(1024 * 1024)) as projector:
        result = projector.project(IMAGE_ID)

    assert isinstance(result, Failed)
    assert (result.service, result.status, result.known) == ("image-loader", 200, False)
    assert result.message == "projection: answer too large"
    assert "GRID_MAX_LOADER_BODY_BYTES" in result.downstream_message


def test_projector_trickling_data_service_fails_the_image_at_its_deadline(grid):
    grid.trickle(IMAGE_ID, "crops", b'{"data": []}', interval=0.5)

    with projector_for(grid, GRID_SERVICE_TIMEOUT_SECONDS="1") as projector:
        result = projector.project(IMAGE_ID)

    assert isinstance(result, Failed)
    assert (result.service, result.status) == ("cropper", None)
    assert "GRID_SERVICE_TIMEOUT_SECONDS" in result.downstream_message
