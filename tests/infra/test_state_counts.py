"""state-counts: mapped to the state table's stream, and alarmed when the tally falls behind."""

from __future__ import annotations

import json

import pytest

from grid_reingest import names
from grid_reingest.adapters.dynamodb import schema, tally
from infra import constants as c
from tests.infra.conftest import function_id, resources, single_id

pytestmark = pytest.mark.slow


def test_state_counts_takes_every_image_write_of_the_stream_in_order(assembly):
    raw = assembly.raw("TEST")
    (mapping,) = resources(raw, "AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]

    assert props["FunctionName"] == {"Ref": function_id(raw, names.STATE_COUNTS)}
    assert props["EventSourceArn"] == {
        "Fn::GetAtt": [single_id(raw, "AWS::DynamoDB::Table"), "StreamArn"]
    }
    # From the oldest record kept, each shard's batches one at a time, never split
    assert props["StartingPosition"] == "TRIM_HORIZON"
    assert props["ParallelizationFactor"] == 1
    assert props["BisectBatchOnFunctionError"] is False
    assert props["BatchSize"] == c.STATE_COUNTS_BATCH_SIZE
    assert props["MaximumBatchingWindowInSeconds"] == c.STATE_COUNTS_WINDOW_SECONDS
    # Writes to items with a state only: not the control item, not the tally's own
    patterns = [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]]
    assert patterns == [
        {"dynamodb": {image: {schema.STATE: {"N": [{"exists": True}]}}}}
        for image in ("NewImage", "OldImage")
    ]


def test_state_counts_writes_only_keys_of_the_tally():
    assert tally.COUNTS_ID.startswith(names.TALLY_KEY_PREFIX)
    assert tally.MARKER_PREFIX.startswith(names.TALLY_KEY_PREFIX)
    assert names.STATE_ATTRIBUTE == schema.STATE


@pytest.mark.parametrize("stage", c.STAGES)
def test_state_counts_alarms_on_errors_and_on_a_tally_that_falls_behind(assembly, stage):
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in resources(assembly.raw(stage), "AWS::CloudWatch::Alarm").values()
    }
    errors = alarms[c.resource_name(f"{names.STATE_COUNTS}-errors", stage)]
    late = alarms[c.resource_name(f"{names.STATE_COUNTS}-late", stage)]

    assert (errors["MetricName"], errors["Threshold"]) == ("Errors", c.ERROR_ALARM_THRESHOLD)
    assert (late["MetricName"], late["Statistic"]) == ("IteratorAge", "Maximum")
    assert late["Threshold"] == c.STATE_COUNTS_LATE_ALARM_MINUTES * 60 * 1000
    assert errors["TreatMissingData"] == late["TreatMissingData"] == "notBreaching"
