"""THRALL_CHECKPOINT_TABLE: thrall's KCL lease table, optional, checked as a DynamoDB table name."""

import pytest

from grid_reingest.settings import (
    THRALL_CHECKPOINT_TABLE,
    BatchIndexSettings,
    SettingsError,
    describe,
    load,
)

INDEX = {"STATE_TABLE_NAME": "t", "THRALL_STREAM_NAME": "s", "PROJECTION_FUNCTION_NAME": "f"}


def test_checkpoint_table_setting_is_optional():
    # Given batch-index's environment without the variable
    # When its settings are loaded
    settings = load(BatchIndexSettings, INDEX)

    # Then there is no checkpoint table: CloudWatch's iterator age alone
    assert settings.checkpoint_table is None


@pytest.mark.parametrize(
    "name",
    [
        "media-service-PROD-ThrallLowPriorityMessageStream",
        "abc",
        "a_b.c-D9",
        "x" * 255,
    ],
)
def test_checkpoint_table_setting_takes_a_dynamodb_table_name(name):
    # Given a valid table name, When loaded
    settings = load(BatchIndexSettings, {**INDEX, THRALL_CHECKPOINT_TABLE.name: name})

    # Then it is kept as it is
    assert settings.checkpoint_table == name


@pytest.mark.parametrize(
    "name",
    [
        "ab",  # too short
        "x" * 256,  # too long
        "thrall/leases",
        "thrall leases",
        "arn:aws:dynamodb:eu-west-1:123456789012:table/thrall",
        "thräll",
    ],
)
def test_checkpoint_table_setting_refuses_what_is_no_table_name(name):
    # Given a value DynamoDB would refuse as a table name
    # When loaded, Then the error names the variable, the value and what is allowed
    with pytest.raises(SettingsError) as caught:
        load(BatchIndexSettings, {**INDEX, THRALL_CHECKPOINT_TABLE.name: name})

    (problem,) = caught.value.problems
    assert problem.startswith(f"{THRALL_CHECKPOINT_TABLE.name}={name!r} is invalid")
    assert THRALL_CHECKPOINT_TABLE.allowed in problem


def test_checkpoint_table_setting_is_described():
    # Given batch-index's variables, When described, Then the variable says what unset means
    text = describe(BatchIndexSettings)

    assert "THRALL_CHECKPOINT_TABLE\n    thrall's KCL lease table" in text
    assert "unset: CloudWatch's only" in text
    assert "default: (unset)" in text
