"""Scan pages decoded by json alone must read exactly as botocore would read them."""

import json

import boto3
import pytest
from botocore.parsers import create_parser

from grid_reingest.adapters.dynamodb.plain_items import read_plain_items

SCAN = boto3.client("dynamodb", region_name="eu-west-1").meta.service_model.operation_model("Scan")


def response(body: object, status: int = 200) -> dict:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {"status_code": status, "headers": {}, "body": raw}


def botocore_reads(body: object, status: int = 200) -> dict:
    return create_parser("json").parse(response(body, status), SCAN.output_shape)


def hooked_reads(body: object, status: int = 200) -> tuple[dict, bool]:
    """What the client returns with the hook installed, and whether the hook took the page."""
    raw, custom = response(body, status), {}
    read_plain_items(response_dict=raw, customized_response_dict=custom)
    parsed = create_parser("json").parse(raw, SCAN.output_shape)
    parsed.update(custom)
    return parsed, bool(custom)


PAGE = {
    "Items": [{"id": {"S": f"{i:040x}"}, "progress_state": {"N": str(i % 10)}} for i in range(50)],
    "Count": 50,
    "ScannedCount": 50,
    "LastEvaluatedKey": {"id": {"S": f"{49:040x}"}},
    "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 2.5},
}


def test_a_page_of_strings_and_numbers_reads_as_botocore_reads_it():
    parsed, taken = hooked_reads(PAGE)
    assert taken
    assert parsed == botocore_reads(PAGE)


@pytest.mark.parametrize(
    "value",
    [
        {"B": "aGVsbG8="},  # botocore decodes base64 to bytes
        {"BOOL": True},
        {"NULL": True},
        {"L": [{"S": "a"}]},
        {"M": {"a": {"N": "1"}}},
        {"SS": ["a", "b"]},
        {"NS": ["1"]},
        "S",  # not an attribute value at all
    ],
)
def test_a_page_with_any_other_value_is_left_to_botocore(value):
    page = {**PAGE, "Items": [*PAGE["Items"], {"id": {"S": "x"}, "extra": value}]}
    raw = response(page)
    custom: dict = {}
    read_plain_items(response_dict=raw, customized_response_dict=custom)
    assert custom == {}
    assert raw["body"] == response(page)["body"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"<html>gateway timeout</html>", 200),
        (b"", 200),
        ({"__type": "ThrottlingException", "message": "slow down"}, 400),
        ({"Items": [], "Count": 0, "ScannedCount": 0}, 200),
        ([1, 2, 3], 200),
    ],
)
def test_errors_empty_pages_and_odd_bodies_are_left_to_botocore(body, status):
    raw = response(body, status)
    custom: dict = {}
    read_plain_items(response_dict=raw, customized_response_dict=custom)
    assert custom == {}
    assert raw["body"] == response(body, status)["body"]


def test_a_botocore_that_cannot_take_items_back_parses_as_usual():
    raw = response(PAGE)
    read_plain_items(response_dict=raw)
    assert raw["body"] == response(PAGE)["body"]
