"""Invoking image-projection: every answer, including a broken invoke, becomes an outcome."""

import io
import json

import boto3
from botocore.response import StreamingBody
from botocore.stub import Stubber

from grid_reingest.adapters.lambda_projector import LambdaProjector
from grid_reingest.domain.outcome import Failed, NotFound, Ready, to_json

IMAGE = "a" * 40


def stubbed():
    client = boto3.client("lambda", region_name="eu-west-1")
    return client, Stubber(client)


def payload(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def expect(stubber, response):
    stubber.add_response(
        "invoke",
        response,
        {
            "FunctionName": "projection",
            "InvocationType": "RequestResponse",
            "Payload": json.dumps({"id": IMAGE}).encode(),
        },
    )


def test_an_outcome_comes_back_as_itself():
    client, stubber = stubbed()
    for outcome in (Ready(IMAGE, b"\x00data", 10), NotFound(IMAGE)):
        expect(
            stubber, {"StatusCode": 200, "Payload": payload(json.dumps(to_json(outcome)).encode())}
        )
    with stubber:
        projector = LambdaProjector(client, "projection")
        assert projector.project(IMAGE) == Ready(IMAGE, b"\x00data", 10)
        assert projector.project(IMAGE) == NotFound(IMAGE)


def test_a_function_error_is_a_failure_with_lambdas_words():
    client, stubber = stubbed()
    expect(
        stubber,
        {
            "StatusCode": 200,
            "FunctionError": "Unhandled",
            "Payload": payload(b'{"errorMessage": "Task timed out after 330.00 seconds"}'),
        },
    )
    with stubber:
        outcome = LambdaProjector(client, "projection").project(IMAGE)
    assert isinstance(outcome, Failed)
    assert outcome.service == "image-projection"
    assert "Task timed out" in outcome.downstream_message


def test_a_refused_invoke_is_a_failure():
    client, stubber = stubbed()
    stubber.add_client_error("invoke", "TooManyRequestsException", "Rate exceeded", 429)
    with stubber:
        outcome = LambdaProjector(client, "projection").project(IMAGE)
    assert outcome == Failed(
        IMAGE, "image-projection", 429, "invoke failed: TooManyRequestsException", "Rate exceeded"
    )


def test_a_garbled_payload_is_a_failure_not_a_crash():
    client, stubber = stubbed()
    expect(stubber, {"StatusCode": 200, "Payload": payload(b'{"id": "x"}')})
    with stubber:
        outcome = LambdaProjector(client, "projection").project(IMAGE)
    assert isinstance(outcome, Failed) and "malformed projection outcome" in outcome.message


def test_lambda_projector_throttles_and_service_faults_are_overload():
    # Given the Lambda service throttling, then failing on its side
    from grid_reingest.domain.systemic import Cause, cause_of

    client, stubber = stubbed()
    stubber.add_client_error("invoke", "TooManyRequestsException", "Rate exceeded", 429)
    stubber.add_client_error("invoke", "ServiceException", "internal", 500)
    with stubber:
        throttled = LambdaProjector(client, "projection").project(IMAGE)
        faulted = LambdaProjector(client, "projection").project(IMAGE)
    # Then both count as overload (no attempt when systemic), not as the image's failure
    for outcome in (throttled, faulted):
        assert isinstance(outcome, Failed)
        assert cause_of(outcome.status, infrastructure=True) is Cause.OVERLOAD
