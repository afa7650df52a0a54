"""The Grid HTTP adapter against the simulated Grid, over real HTTP."""

from __future__ import annotations

import functools
import logging
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devtools.grid_server import GridSim
from devtools.servers import free_port
from grid_reingest.adapters.grid import DATA_CALLS, GridClient, InvalidImageId

IMAGE_ID = "0123456789abcdef0123456789abcdef01234567"


def test_grid_client_sends_the_key_to_every_service(grid):
    # Given a client with the sim's key
    client = GridClient(grid.settings(), grid.api_key)

    # When every call is made once
    responses = [client.projection(IMAGE_ID), client.image(IMAGE_ID)]
    responses += [client.data(call, IMAGE_ID) for call in DATA_CALLS]

    # Then every service saw the key, and none refused it
    assert all(r.status in (200, 404) for r in responses), responses
    assert grid.keys_seen == {grid.api_key: len(responses)}
    assert set(grid.counts) == {
        "image-loader",
        "media-api",
        "leases",
        "collections",
        "metadata-editor",
        "usage",
        "cropper",
    }


def test_grid_client_wrong_key_is_a_401_result_not_an_exception(grid):
    client = GridClient(grid.settings(), "not-the-key")
    response = client.projection(IMAGE_ID)
    assert (response.status, response.body) == (401, None)
    assert response.message == "Invalid API key"


def test_grid_client_validate_key(grid):
    client = GridClient(grid.settings(), grid.api_key)
    assert client.validate_key().valid is True
    assert client.with_key("wrong").validate_key().valid is False
    grid.fail("", "root", 500)
    assert client.validate_key().valid is None


def test_grid_client_parses_the_loader_image(grid):
    response = GridClient(grid.settings(), grid.api_key).projection(IMAGE_ID)
    assert response.ok
    assert response.body == grid.image(IMAGE_ID)


def test_grid_client_media_api_presence(grid):
    # Given one image indexed, one not, one whose lookup fails
    grid.index_all = False
    grid.indexed.add("a" * 40)
    grid.fail("c" * 40, "image", 500)
    client = GridClient(grid.settings(), grid.api_key)

    # When / Then
    assert client.image("a" * 40).status == 200
    assert client.image("b" * 40).not_found
    failed = client.image("c" * 40)
    assert (failed.status, failed.message) == (500, "simulated 500")


def test_grid_client_retries_502_and_503_then_succeeds(grid):
    # Given leases failing twice (502, then 503) before it answers
    grid.fail(IMAGE_ID, "leases", 502, times=1)
    client = GridClient(grid.settings(), grid.api_key)
    first = client.data("leases", IMAGE_ID)
    grid.fail(IMAGE_ID, "leases", 503, times=2)

    # When
    second = client.data("leases", IMAGE_ID)

    # Then both calls succeeded, after 1 + 2 retries
    assert first.ok and second.ok
    assert grid.endpoint_counts["leases"] == 2 + 3


def test_grid_client_retries_a_dropped_connection(grid):
    # Given a loader that hangs up without answering, once
    grid.drop(IMAGE_ID, "projection", times=1)

    # When / Then the second try answers
    assert GridClient(grid.settings(), grid.api_key).projection(IMAGE_ID).ok
    assert grid.endpoint_counts["projection"] == 2


def test_grid_client_gives_up_after_three_retries(grid):
    grid.fail(IMAGE_ID, "crops", 503)
    response = GridClient(grid.settings(), grid.api_key).data("crops", IMAGE_ID)
    assert response.status == 503
    assert grid.endpoint_counts["crops"] == 4


def test_grid_client_does_not_retry_a_500(grid):
    grid.fail(IMAGE_ID, "usages", 500)
    assert GridClient(grid.settings(), grid.api_key).data("usages", IMAGE_ID).status == 500
    assert grid.endpoint_counts["usages"] == 1


def test_grid_client_connection_refused_is_a_result_without_status(grid):
    # Given a cropper URL where nothing listens
    port = free_port()
    client = GridClient(
        grid.settings(GRID_CROPPER_URL=f"http://127.0.0.1:{port}/cropper"), grid.api_key
    )

    # When
    response = client.data("crops", IMAGE_ID)

    # Then
    assert response.status is None
    assert "ConnectionError" in response.message


def test_grid_client_read_timeout_is_not_retried(grid):
    # Given a data service slower than the service timeout
    grid.slow(IMAGE_ID, "edits", 1.5)
    client = GridClient(grid.settings(GRID_SERVICE_TIMEOUT_SECONDS="1"), grid.api_key)

    # When
    response = client.data("edits", IMAGE_ID)

    # Then no answer at the call's deadline, and it was asked once
    assert response.status is None
    assert "deadline of 1 s (GRID_SERVICE_TIMEOUT_SECONDS)" in response.message
    assert 1 <= response.seconds < 1.4
    assert grid.endpoint_counts["edits"] == 1


def test_grid_client_malformed_json_is_flagged(grid):
    grid.malformed(IMAGE_ID, "leases")
    response = GridClient(grid.settings(), grid.api_key).data("leases", IMAGE_ID)
    assert (response.status, response.malformed, response.ok, response.body) == (
        200,
        True,
        False,
        None,
    )


def test_grid_client_ids_stay_one_path_segment(grid):
    response = GridClient(grid.settings(), grid.api_key).projection("a/../b?x=1")
    assert response.status == 200
    assert response.body["id"] == "a/../b?x=1"


def test_grid_client_pool_holds_every_call_in_flight():
    # Given a slow Grid and 4 images' worth of concurrent calls (28)
    with GridSim(default_latency=1.0) as sim:
        client = GridClient(sim.settings(GRID_CONCURRENCY="4"), sim.api_key)
        calls = list(DATA_CALLS) * 4

        # When they all go at once
        with ThreadPoolExecutor(len(calls)) as pool:
            list(pool.map(lambda call: client.data(call, IMAGE_ID), calls))

        # Then they were all in flight together
        assert sim.peak["total"] == len(calls)


def test_grid_client_never_logs_or_reports_the_key(grid, caplog):
    # Given everything logged, down to urllib3's connection debugging
    caplog.set_level(logging.DEBUG)
    key = "secret-key-that-must-not-leak"
    grid.api_keys.add(key)
    grid.fail(IMAGE_ID, "leases", 503, body={"errorMessage": f"bad key {key}"})
    grid.malformed(IMAGE_ID, "crops")
    grid.slow(IMAGE_ID, "edits", 1.5)
    port = free_port()
    settings = grid.settings(
        GRID_SERVICE_TIMEOUT_SECONDS="1", GRID_USAGE_URL=f"http://127.0.0.1:{port}/usage"
    )
    client = GridClient(settings, key)

    # When calls fail in every way
    with ThreadPoolExecutor(len(DATA_CALLS)) as pool:
        responses = list(pool.map(lambda call: client.data(call, IMAGE_ID), DATA_CALLS))
    responses.append(client.with_key(key + "-wrong").projection(IMAGE_ID))

    # Then the key is nowhere: not in logs, results or the client's repr
    assert {r.status for r in responses} >= {None, 503, 200, 401}
    assert "GET /leases/media" in caplog.text or "/leases/media/" in caplog.text
    assert key not in caplog.text
    assert all(key not in repr(r) for r in responses)
    assert key not in repr(client)


def test_grid_sim_refuses_a_request_without_a_key(grid):
    response = requests.get(grid.base_url("leases") + "/", timeout=5)
    assert response.status_code == 401
    assert grid.keys_seen == {}


def test_grid_sim_serves_two_hundred_requests_at_once():
    # Given a sim answering in 200 ms
    with GridSim(default_latency=0.2) as sim:
        client = GridClient(sim.settings(GRID_CONCURRENCY="30"), sim.api_key)
        ids = [f"{i:040x}" for i in range(200)]

        # When 200 requests go at once
        with ThreadPoolExecutor(200) as pool:
            statuses = list(pool.map(lambda i: client.data("crops", i).status, ids))

        # Then every one is answered, many of them at the same time
        assert statuses == [200] * 200
        assert sim.peak["cropper"] > 30


# -- bounds: a deadline per call, a cap per body, ids that stay one segment -------------


def test_grid_client_trickled_body_fails_at_the_calls_deadline(grid):
    # Given leases sending a 14-byte answer one byte every 0.5 s (7 s in all),
    # each byte well within the 1 s a single read may wait
    grid.trickle(IMAGE_ID, "leases", b'{"data": null}', interval=0.5)
    client = GridClient(grid.settings(GRID_SERVICE_TIMEOUT_SECONDS="1"), grid.api_key)

    # When
    response = client.data("leases", IMAGE_ID)

    # Then the call failed at its deadline, naming the setting, well before the trickle ended
    assert (response.status, response.ok) == (None, False)
    assert "deadline of 1 s (GRID_SERVICE_TIMEOUT_SECONDS)" in response.message
    assert response.seconds < 5


def test_grid_client_retries_stop_at_the_calls_deadline(grid):
    # Given leases answering 503 after 0.4 s, every time: four tries and their
    # backoff would take about 3 s
    grid.latency["leases"] = 0.4
    grid.fail(IMAGE_ID, "leases", 503)
    client = GridClient(grid.settings(GRID_SERVICE_TIMEOUT_SECONDS="1"), grid.api_key)

    # When
    response = client.data("leases", IMAGE_ID)

    # Then the last status is reported, and no try started that the budget could not hold
    assert response.status == 503
    assert grid.endpoint_counts["leases"] < 4


def test_grid_client_announced_body_over_the_cap_is_not_read(grid):
    # Given image-loader announcing 64 MiB, over a 1 MiB cap
    grid.oversized(IMAGE_ID, "projection", 64 * 1024 * 1024)
    settings = grid.settings(GRID_MAX_LOADER_BODY_BYTES=str(1024 * 1024))

    # When
    response = GridClient(settings, grid.api_key).projection(IMAGE_ID)

    # Then a failure with the real status, naming the cap
    assert (response.status, response.oversized, response.ok, response.body) == (
        200,
        True,
        False,
        None,
    )
    assert "the cap is 1048576 bytes (GRID_MAX_LOADER_BODY_BYTES)" in response.message


def test_grid_client_streamed_body_over_the_cap_stops_reading_at_the_cap(grid):
    # Given a data service streaming 32 MiB without announcing a length, a 1 MiB cap
    grid.oversized(IMAGE_ID, "usages", 32 * 1024 * 1024, declare_length=False)
    client = GridClient(grid.settings(GRID_MAX_SERVICE_BODY_BYTES=str(1024 * 1024)), grid.api_key)

    # When
    tracemalloc.start()
    try:
        response = client.data("usages", IMAGE_ID)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then the call failed naming the cap, and memory grew by about the cap, not the body
    assert (response.status, response.oversized) == (200, True)
    assert "GRID_MAX_SERVICE_BODY_BYTES" in response.message
    assert peak < 4 * 1024 * 1024


def test_grid_client_presence_check_reports_the_status_of_an_oversized_answer(grid):
    # Given media-api's answer for an image larger than the cap
    grid.oversized(IMAGE_ID, "image", 8 * 1024 * 1024)
    settings = grid.settings(GRID_MAX_SERVICE_BODY_BYTES=str(64 * 1024))

    # When / Then only the status matters: present
    assert GridClient(settings, grid.api_key).image(IMAGE_ID).status == 200


def test_grid_client_body_within_the_cap_is_read_whole(grid):
    # Given a 200 KiB answer, streamed without a length, under a 256 KiB cap
    grid.oversized(IMAGE_ID, "crops", 200 * 1024, declare_length=False)
    client = GridClient(grid.settings(GRID_MAX_SERVICE_BODY_BYTES=str(256 * 1024)), grid.api_key)

    # When
    response = client.data("crops", IMAGE_ID)

    # Then it was read to its end (blanks only: an empty JSON document)
    assert (response.status, response.oversized, response.malformed) == (200, False, True)
    assert response.message.startswith("Expecting value")


@pytest.mark.parametrize("image_id", ["..", ".", "", "a b", "a\tb", "x" * 257])
def test_grid_client_refuses_unusable_ids_before_any_call(grid, image_id):
    client = GridClient(grid.settings(), grid.api_key)

    for call in (
        client.projection,
        client.image,
        *(functools.partial(client.data, name) for name in DATA_CALLS),
    ):
        with pytest.raises(InvalidImageId, match="not an image id"):
            call(image_id)

    assert sum(grid.counts.values()) == 0


def test_grid_client_dot_dot_never_reaches_get_root(grid):
    client = GridClient(grid.settings(), grid.api_key)
    with pytest.raises(InvalidImageId):
        client.data("leases", "..")
    assert grid.endpoint_counts["root"] == 0


def test_grid_client_id_of_256_characters_is_sent_percent_encoded(grid):
    image_id = "é/" + "a" * 254
    response = GridClient(grid.settings(), grid.api_key).projection(image_id)
    assert response.status == 200
    assert response.body["id"] == image_id


def test_grid_client_trickled_headers_fail_at_the_calls_deadline(grid):
    # Given media-api sending its status line and headers one byte every 0.4 s (about 30 s
    # in all), each byte well within the 1 s a single read may wait
    grid.trickle_headers(IMAGE_ID, "image", interval=0.4)
    client = GridClient(grid.settings(GRID_SERVICE_TIMEOUT_SECONDS="1"), grid.api_key)

    # When
    response = client.image(IMAGE_ID)

    # Then the call failed at its deadline: its late 200 never counts
    assert response.status is None
    assert "deadline of 1 s (GRID_SERVICE_TIMEOUT_SECONDS)" in response.message
    assert response.seconds < 2


def test_grid_client_deeply_nested_json_is_an_answer_of_its_kind(grid):
    # Given 20,000 levels of nested brackets (40 KB, under the smallest body cap): deeper
    # than the JSON parser goes (about 1,000 levels to Python 3.12, 10,000 from 3.13)
    nested = b"[" * 20_000 + b"]" * 20_000
    grid.fail(IMAGE_ID, "image", 404, nested)
    grid.fail(IMAGE_ID, "leases", 200, nested)
    client = GridClient(grid.settings(), grid.api_key)

    # Then a 404 stays a 404, and a 200 is malformed JSON: never an exception
    assert client.image(IMAGE_ID).status == 404
    leases = client.data("leases", IMAGE_ID)
    assert (leases.status, leases.malformed) == (200, True)


def test_grid_client_health_route(grid):
    client = GridClient(grid.settings(), grid.api_key)
    assert client.health("usage") is True
    grid.unhealthy.add("usage")
    assert client.health("usage") is False
    assert client.health("kinesis") is None  # not a Grid service
