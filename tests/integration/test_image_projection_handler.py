"""The image-projection Lambda handler with real event shapes, against the simulated Grid."""

from __future__ import annotations

import ast
import base64
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.grid_server import BARE, GridSim, Profile
from devtools.servers import free_port
from grid_reingest import names
from grid_reingest.adapters.grid_projector import GridProjector
from grid_reingest.domain.outcome import from_json
from grid_reingest.handlers import image_projection
from grid_reingest.settings import SettingsError

IMAGE_ID = "9b1e2f3a4c5d6e7f8091a2b3c4d5e6f708192a3b"
CALLER_KEY = "callers-own-key-7f3a"
CONFIGURED_KEY = "configured-key-19c2"


@dataclass
class LambdaContext:
    function_name: str = "image-projection-TEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = (
        "arn:aws:lambda:eu-west-1:123456789012:function:image-projection-TEST"
    )
    aws_request_id: str = "6f1b3c2a-1d2e-4f5a-8b9c-0d1e2f3a4b5c"


def function_url_event(path: str, key: str | None = CALLER_KEY, method: str = "GET") -> dict:
    """A Lambda Function URL request (payload format 2.0), as Lambda delivers it."""
    headers = {
        "host": "abcdefghij.lambda-url.eu-west-1.on.aws",
        "user-agent": "curl/8.4.0",
        "accept": "*/*",
        "x-amzn-trace-id": "Root=1-66321a00-0123456789abcdef01234567",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    if key is not None:
        headers["x-gu-media-key"] = key  # Function URLs lower-case header names
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghij",
            "domainName": "abcdefghij.lambda-url.eu-west-1.on.aws",
            "domainPrefix": "abcdefghij",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "curl/8.4.0",
            },
            "requestId": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/May/2024:10:00:00 +0000",
            "timeEpoch": 1714557600000,
        },
        "isBase64Encoded": False,
    }


def api_gateway_event(path: str, key: str | None = CALLER_KEY, method: str = "GET") -> dict:
    """An API Gateway REST API proxy request (payload format 1.0)."""
    headers = {
        "Accept": "application/json",
        "Host": "abcdef1234.execute-api.eu-west-1.amazonaws.com",
        "User-Agent": "python-requests/2.32.3",
        "X-Amzn-Trace-Id": "Root=1-66321a00-0123456789abcdef01234567",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    if key is not None:
        headers["X-Gu-Media-Key"] = key
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourceId": "a1b2c3",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": "XyZ12AbCdEfGhIj=",
            "requestTime": "01/May/2024:10:00:00 +0000",
            "path": f"/TEST{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "TEST",
            "domainPrefix": "abcdef1234",
            "requestTimeEpoch": 1714557600000,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "python-requests/2.32.3"},
            "domainName": "abcdef1234.execute-api.eu-west-1.amazonaws.com",
            "apiId": "abcdef1234",
        },
        "body": None,
        "isBase64Encoded": False,
    }


@pytest.fixture
def sim():
    with GridSim(api_key=CONFIGURED_KEY) as grid:
        grid.api_keys.add(CALLER_KEY)
        yield grid


@pytest.fixture
def logs():
    """Everything the handler's logger writes."""
    handler = image_projection.logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


@pytest.fixture
def invoke(sim, monkeypatch, logs):
    """Calls the handler as Lambda would, in a fresh container configured for the sim."""
    for name, value in sim.env(STAGE="TEST").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(image_projection, "_runtime", None)

    def call(event):
        return image_projection.handler(event, LambdaContext())

    yield call
    if image_projection._runtime is not None:
        image_projection._runtime.projector.close()


EVENTS = [function_url_event, api_gateway_event]
REQUEST_ID = LambdaContext.aws_request_id


def header(response: dict, name: str) -> str:
    """A response header, from a Function URL's `headers` or API Gateway's `multiValueHeaders`."""
    if "headers" in response:
        return response["headers"][name]
    (value,) = response["multiValueHeaders"][name]
    return value


def log_lines(logs) -> list[dict]:
    return [json.loads(line) for line in logs.getvalue().splitlines()]


# -- HTTP ----------------------------------------------------------------------------


@pytest.mark.parametrize("event", EVENTS)
def test_handler_http_returns_the_projected_image(invoke, sim, event):
    # Given an image every service knows something about
    sim.profiles[IMAGE_ID] = Profile(leases=1, crops=2, usages=1, edits=True)

    # When
    response = invoke(event(f"/images/projection/{IMAGE_ID}"))

    # Then
    assert response["statusCode"] == 200
    assert header(response, "Content-Type") == "application/json"
    image = json.loads(response["body"])
    assert image["id"] == IMAGE_ID
    assert len(image["exports"]) == 2
    assert image["userMetadata"] == sim.service_data(IMAGE_ID)["edits"]


def test_handler_http_calls_the_grid_with_the_callers_key(invoke, sim):
    invoke(function_url_event(f"/images/projection/{IMAGE_ID}"))
    # one key check, the loader and seven data calls
    assert sim.keys_seen == {CALLER_KEY: 1 + 1 + 7}


def test_handler_http_header_name_in_any_case(invoke):
    event = api_gateway_event(f"/images/projection/{IMAGE_ID}", key=None)
    event["headers"]["x-GU-media-KEY"] = CALLER_KEY
    assert invoke(event)["statusCode"] == 200


@pytest.mark.parametrize("event", EVENTS)
def test_handler_http_not_found(invoke, sim, event):
    sim.missing.add(IMAGE_ID)
    response = invoke(event(f"/images/projection/{IMAGE_ID}"))
    assert response["statusCode"] == 404
    assert json.loads(response["body"]) == {"message": f"image with id={IMAGE_ID} not-found"}


@pytest.mark.parametrize("event", EVENTS)
def test_handler_http_failure_tells_the_caller_a_request_id_and_logs_the_details(
    invoke, sim, event, logs
):
    # Given a data service failing
    sim.fail(IMAGE_ID, "syndication", 500, {"errorKey": "x", "errorMessage": "dynamo is down"})

    # When
    response = invoke(event(f"/images/projection/{IMAGE_ID}"))

    # Then the caller gets a generic message and the request id, nothing more
    assert response["statusCode"] == 500
    assert json.loads(response["body"]) == {
        "message": image_projection.INTERNAL_ERROR,
        "requestId": REQUEST_ID,
    }
    # and the log holds what failed, under that request id
    (line,) = [line for line in log_lines(logs) if line["message"] == "answered 500"]
    assert (line["request_id"], line["function_request_id"]) == (REQUEST_ID, REQUEST_ID)
    assert (line["service"], line["status"]) == ("metadata-editor", 500)
    assert line["downstream_message"] == "dynamo is down"
    assert line["failure"] == "syndication failed"


def test_handler_http_failure_never_shows_internal_addresses(invoke, sim, monkeypatch):
    # Given a usage service nobody answers at (its URL holds an internal address)
    port = free_port()
    monkeypatch.setenv("GRID_USAGE_URL", f"http://127.0.0.1:{port}/usage")
    sim.profiles[IMAGE_ID] = Profile(usages=1)

    # When
    response = invoke(function_url_event(f"/images/projection/{IMAGE_ID}"))

    # Then nothing of the address, the service or the error reaches the caller
    assert response["statusCode"] == 500
    for leak in ("127.0.0.1", str(port), "usage", "Connection", "HTTP"):
        assert leak not in response["body"]


@pytest.mark.parametrize("event", EVENTS)
def test_handler_http_missing_key(invoke, sim, event):
    response = invoke(event(f"/images/projection/{IMAGE_ID}", key=None))
    assert response["statusCode"] == 401
    assert json.loads(response["body"]) == {"message": "missing or invalid api key header"}
    assert sum(sim.counts.values()) == 0


def test_handler_http_wrong_key_is_checked_once_then_remembered(invoke, sim):
    # When a caller with a key the Grid refuses asks twice
    responses = [invoke(function_url_event(f"/images/projection/{IMAGE_ID}", "wrong"))]
    responses.append(invoke(function_url_event(f"/images/projection/{IMAGE_ID}", "wrong")))

    # Then both are refused, the Grid was asked once, and nothing was projected
    assert [r["statusCode"] for r in responses] == [401, 401]
    assert sim.endpoint_counts == {"root": 1}


def test_handler_http_key_check_failing_is_a_500(invoke, sim, logs):
    sim.fail("", "root", 500, {"errorKey": "x", "errorMessage": "leases is down"})
    response = invoke(function_url_event(f"/images/projection/{IMAGE_ID}"))
    assert response["statusCode"] == 500
    assert json.loads(response["body"])["requestId"] == REQUEST_ID
    assert "leases is down" not in response["body"]
    (line,) = [line for line in log_lines(logs) if line["message"] == "answered 500"]
    assert (line["service"], line["downstream_message"]) == ("leases", "leases is down")


def test_handler_http_unexpected_error_is_a_generic_500(invoke, monkeypatch, logs):
    # Given a projector that raises (a bug, not a Grid failure)
    def broken(*args, **kwargs):
        raise RuntimeError("secret internal state at 10.0.0.7")

    monkeypatch.setattr(GridProjector, "project", broken)

    # When
    response = invoke(function_url_event(f"/images/projection/{IMAGE_ID}"))

    # Then
    assert response["statusCode"] == 500
    assert "10.0.0.7" not in response["body"]
    assert json.loads(response["body"])["requestId"] == REQUEST_ID
    (line,) = [line for line in log_lines(logs) if line["message"] == "answered 500"]
    assert line["failure"] == "RuntimeError: secret internal state at 10.0.0.7"


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/images/other/abc", "GET", 404),
        ("/", "GET", 404),
        (f"/images/projection/{IMAGE_ID}", "POST", 405),
        ("/images/projection/", "GET", 400),
        ("/images/projection", "GET", 400),
        ("/images/projection/a/b", "GET", 400),
        ("/images/projection/a%2Fb", "GET", 400),
        ("/images/projection/a%20b", "GET", 400),
        ("/images/projection/..", "GET", 400),
        ("/images/projection/.", "GET", 400),
        ("/images/projection/%2E%2E", "GET", 400),
        ("/images/projection/" + "a" * 257, "GET", 400),
    ],
)
def test_handler_http_bad_requests(invoke, sim, path, method, status):
    response = invoke(function_url_event(path, method=method))
    assert response["statusCode"] == status
    assert json.loads(response["body"])["message"]
    assert sum(sim.counts.values()) == 0


@pytest.mark.parametrize("event", EVENTS)
def test_handler_http_method_not_allowed_says_what_is(invoke, event):
    response = invoke(event(f"/images/projection/{IMAGE_ID}", method="DELETE"))
    assert response["statusCode"] == 405
    assert header(response, "Allow") == "GET"


@pytest.mark.parametrize("event", EVENTS)
def test_handler_http_dot_dot_never_reaches_get_root(invoke, sim, event):
    response = invoke(event("/images/projection/.."))
    assert response["statusCode"] in (400, 404)
    assert sim.endpoint_counts["root"] == 0
    assert sum(sim.counts.values()) == 0


# -- direct invocation ------------------------------------------------------------------


def test_handler_direct_ready_record(invoke, sim):
    # Given an image with soft-delete metadata
    sim.profiles[IMAGE_ID] = Profile(soft_delete="deleted", usages=2)

    # When batch-index invokes the function with an id
    payload = invoke({"id": IMAGE_ID})

    # Then it gets the encoded record, made with the configured key
    outcome = from_json(payload)
    assert payload["outcome"] == "ready"
    message = json.loads(gzip.decompress(outcome.record[1:]))
    assert outcome.record[:1] == b"\x00"
    assert message["subject"] == "reingest-image"
    assert message["image"]["id"] == IMAGE_ID
    assert "softDeletedMetadata" in message["image"]
    assert message["lastModified"].endswith("Z")
    assert base64.b64decode(payload["record"]) == outcome.record
    assert set(sim.keys_seen) == {CONFIGURED_KEY}


def test_handler_direct_not_found(invoke, sim):
    sim.missing.add(IMAGE_ID)
    assert invoke({"id": IMAGE_ID}) == {"id": IMAGE_ID, "outcome": "not-found"}


def test_handler_direct_too_big(invoke, sim):
    sim.huge.add(IMAGE_ID)
    payload = invoke({"id": IMAGE_ID})
    assert payload["outcome"] == "too-big"
    assert payload["recordBytes"] > payload["limit"] == 1024 * 1024


def test_handler_direct_known_failure(invoke, sim):
    sim.known_loader_error(IMAGE_ID)
    payload = invoke({"id": IMAGE_ID})
    assert (payload["outcome"], payload["service"], payload["status"], payload["known"]) == (
        "failed",
        "image-loader",
        500,
        True,
    )


@pytest.mark.parametrize("event", [{}, {"id": 42}, {"ids": ["a"]}, ["a"]])
def test_handler_direct_without_a_usable_id_raises(invoke, event):
    with pytest.raises(ValueError, match="image id"):
        invoke(event)


@pytest.mark.parametrize("image_id", ["", "a b", "..", ".", "f" * 257])
def test_handler_direct_unusable_id_is_a_known_failure_without_any_call(invoke, sim, image_id):
    payload = invoke({"id": image_id})
    assert (payload["outcome"], payload["known"], payload["status"]) == ("failed", True, 400)
    assert payload["errorMessage"].startswith("not an image id")
    assert sum(sim.counts.values()) == 0


def test_handler_direct_loader_answering_with_another_image_is_a_known_failure(invoke, sim):
    # Given image-loader answering for IMAGE_ID with another image
    other = "c" * 40
    sim.answers_with(IMAGE_ID, other)

    # When batch-index asks for IMAGE_ID
    payload = invoke({"id": IMAGE_ID})

    # Then no record: a known failure (state 4) naming both ids
    assert (payload["outcome"], payload["known"], payload["service"]) == (
        "failed",
        True,
        "image-loader",
    )
    assert IMAGE_ID in payload["errorMessage"] and other in payload["errorMessage"]


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_handler_settings_problems_are_reported(monkeypatch, logs):
    # Given a container with no Grid configured
    for name in GridSim().env():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(image_projection, "_runtime", None)

    # When / Then the invocation fails with every problem listed
    with pytest.raises(SettingsError, match="GRID_DOMAIN_ROOT is required"):
        image_projection.handler({"id": IMAGE_ID}, LambdaContext())


# -- logs ---------------------------------------------------------------------------------


def test_handler_logs_carry_the_image_id_and_never_a_key(invoke, sim, logs, capsys):
    # Given failures of every kind, on both paths
    # (a service that echoes the key it was sent in its error message)
    sim.profiles[IMAGE_ID] = BARE
    sim.fail(IMAGE_ID, "leases", 500, {"errorMessage": f"refused {CALLER_KEY}"})
    invoke(function_url_event(f"/images/projection/{IMAGE_ID}"))
    invoke(api_gateway_event(f"/images/projection/{IMAGE_ID}", key="wrong"))
    sim.fail(IMAGE_ID, "leases", 500, {"errorMessage": f"refused {CONFIGURED_KEY}"})
    invoke({"id": IMAGE_ID})
    sim.missing.add(IMAGE_ID)
    invoke({"id": IMAGE_ID})

    # Then every line names the image, and no key appears anywhere
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert lines
    assert all(line["image_id"] == IMAGE_ID for line in lines)
    assert any(line["message"] == "projection failed" for line in lines)
    everything = logs.getvalue() + "".join(capsys.readouterr())
    for key in (CALLER_KEY, CONFIGURED_KEY, "wrong"):
        assert key not in everything


def test_handler_metrics_carry_namespace_service_and_stage(invoke, sim, capsys):
    invoke({"id": IMAGE_ID})
    emitted = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
    ]
    assert len(emitted) == 1
    (directive,) = emitted[0]["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "GridReingest"
    assert emitted[0]["service"] == "image-projection"
    assert emitted[0]["stage"] == "TEST"
    assert directive["Dimensions"] == [["stage", "service"]]
    assert emitted[0]["ProjectionReady"] == [1.0]
    assert emitted[0]["ProjectionFound"] == [1.0]


def test_handler_metrics_are_all_named_in_names(invoke, sim, capsys):
    # Given requests that end every way the handler knows
    sim.missing.add("d" * 40)
    sim.huge.add("e" * 40)
    sim.fail("b" * 40, "crops", 500)
    for path in (IMAGE_ID, "d" * 40, "b" * 40, "a%20b"):
        invoke(function_url_event(f"/images/projection/{path}"))
    invoke(api_gateway_event("/elsewhere"))
    for image_id in (IMAGE_ID, "e" * 40, "d" * 40):
        invoke({"id": image_id})
    with pytest.raises(ValueError):
        invoke({"ids": []})

    # When the metrics emitted are collected
    emitted = {
        metric["Name"]
        for line in capsys.readouterr().out.splitlines()
        if '"_aws"' in line
        for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }

    # Then every one is a name of names.PROJECTION_METRICS, and each of those was seen
    assert emitted == set(names.PROJECTION_METRICS)


def test_handler_source_holds_no_metric_name_literal():
    source = ast.parse(Path(image_projection.__file__).read_text())
    literals = {n.value for n in ast.walk(source) if isinstance(n, ast.Constant)}
    assert not literals & set(names.PROJECTION_METRICS)


def test_handler_direct_reads_a_rotated_key_again_after_a_401(invoke, sim, monkeypatch):
    # Given the Grid's key rotated: the Grid now refuses the one the function has cached
    sim.api_keys = {"rotated-key"}
    reads = []

    def read(settings, max_age=300):
        reads.append(max_age)
        return CONFIGURED_KEY if max_age else "rotated-key"

    monkeypatch.setattr(image_projection, "load_api_key", read)
    # When batch-index invokes the function
    payload = invoke({"id": IMAGE_ID})
    # Then it read the key again, uncached, and projected with the new one
    assert payload["outcome"] == "ready"
    assert reads[-2:] == [300, 0]
    assert sim.keys_seen["rotated-key"] >= 1


def test_handler_direct_a_key_still_refused_after_reading_it_again_is_a_401_outcome(
    invoke, sim, monkeypatch
):
    sim.api_keys = {"someone-elses-key"}
    payload = invoke({"id": IMAGE_ID})
    assert (payload["outcome"], payload["status"]) == ("failed", 401)


def test_handler_health_probe_answers_for_a_service(invoke, sim):
    # Given batch-index's probe asking about a service's health route
    assert invoke({"health": "usage"}) == {"health": "usage", "healthy": True}
    sim.unhealthy.add("usage")
    assert invoke({"health": "usage"}) == {"health": "usage", "healthy": False}
    assert invoke({"health": "image-projection"})["healthy"] is True
