"""The batch-index and batch-check handlers, run as Lambda runs them, on the emulator and sim."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest

from devtools.local_lambda import FakeContext, invoke
from devtools.thrall_consumer import read_stream
from devtools.thrall_metrics import report_iterator_age
from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.handlers import batch_check, batch_index
from grid_reingest.settings import SettingsError

STREAM = "thrall-low-TEST"
INDEX_RULE = "index-rule-TEST"
CHECK_RULE = "check-rule-TEST"


@pytest.fixture
def world(aws, table_name, dynamodb, grid):
    """A table of 30 ids, thrall's stream with a healthy iterator age, both rules on."""
    kinesis = boto3.client("kinesis", endpoint_url=aws)
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=STREAM)
    events = boto3.client("events", endpoint_url=aws)
    for rule in (INDEX_RULE, CHECK_RULE):
        events.put_rule(Name=rule, ScheduleExpression="rate(1 minute)", State="ENABLED")
    report_iterator_age(boto3.client("cloudwatch", endpoint_url=aws), STREAM, 100.0)
    ids = [f"{i:040x}" for i in range(30)]
    OperatorTable(table_name, dynamodb).put_new(ids)
    common = {"STAGE": "TEST", "STATE_TABLE_NAME": table_name, **grid.env()}
    return {
        "ids": ids,
        "kinesis": kinesis,
        "events": events,
        "table": OperatorTable(table_name, dynamodb),
        "index_env": {
            **common,
            "THRALL_STREAM_NAME": STREAM,
            "SCHEDULE_RULE_NAME": INDEX_RULE,
            "MAX_IN_FLIGHT": "8",
            "PACE_REFRESH_SECONDS": "1",
        },
        "check_env": {**common, "SCHEDULE_RULE_NAME": CHECK_RULE, "CHECK_MIN_AGE_SECONDS": "0"},
    }


def test_handlers_run_a_whole_pass_and_switch_their_rules_off(world, grid, capfd, caplog):
    # Given one image image-loader does not have
    grid.missing.add(world["ids"][0])
    # When batch-index runs until its rule is off, then batch-check likewise
    for module, env, rule in (
        (batch_index, world["index_env"], INDEX_RULE),
        (batch_check, world["check_env"], CHECK_RULE),
    ):
        for _ in range(5):
            report = invoke(module, env, {}, FakeContext(function_name=rule))
            if report["finishedPass"]:
                break
        assert world["events"].describe_rule(Name=rule)["State"] == "DISABLED"
    # Then
    assert world["table"].counts([S.NOT_FOUND, S.VERIFIED]) == {S.NOT_FOUND: 1, S.VERIFIED: 29}
    assert len(read_stream(world["kinesis"], STREAM)) == 29
    out = capfd.readouterr().out
    metric_lines = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    first = metric_lines[0]
    assert first["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "GridReingest"
    assert first["stage"] == "TEST" and first["service"] == "batch-index"
    assert first["Claimed"] == [30.0]
    assert "ControllerLimit" in first and first["Paused"] == [0.0]
    index_lines = [m for m in metric_lines if m["service"] == "batch-index"]
    assert sum(m["Enqueued"][0] for m in index_lines) == 29
    summaries = [r.summary for r in caplog.records if r.getMessage() == "batch-index invocation"]
    assert sum(s["states"].get("2", 0) for s in summaries) == 1


def test_batch_index_skips_when_thrall_is_behind(world, aws):
    cloudwatch = boto3.client("cloudwatch", endpoint_url=aws)
    report_iterator_age(cloudwatch, STREAM, 3_600_000.0, ago=timedelta(minutes=2))
    report = invoke(batch_index, world["index_env"])
    assert report["claimed"] == 0
    assert "back-pressure: iterator age 3600 s > 60 s" in report["skipped"]
    assert world["table"].count(S.NOT_STARTED) == 30


def test_a_bad_environment_fails_the_invocation_naming_every_variable(world):
    env = {**world["index_env"], "MAX_IN_FLIGHT": "lots", "MAX_ATTEMPTS": "0"}
    with pytest.raises(SettingsError) as caught:
        invoke(batch_index, env)
    assert "MAX_IN_FLIGHT='lots' is invalid" in str(caught.value)
    assert "MAX_ATTEMPTS='0' is invalid" in str(caught.value)
    assert world["table"].count(S.NOT_STARTED) == 30


def test_the_settings_document_themselves(capsys):
    import runpy

    with pytest.raises(SystemExit):
        runpy.run_module("grid_reingest.handlers.batch_check", run_name="__main__")
    assert "CHECK_MIN_AGE_SECONDS" in capsys.readouterr().out


def test_batch_index_handler_fails_loudly_when_the_stream_refuses(world, capfd):
    # Given a stream name that does not exist (a wrong ARN, a deleted stream)
    from grid_reingest.flows.batch_index import StreamRefused

    env = {
        **world["index_env"],
        "THRALL_STREAM_NAME": "no-such-stream",
        "BACKPRESSURE_STREAMS": STREAM,
    }
    # When
    with pytest.raises(StreamRefused, match="ResourceNotFoundException"):
        invoke(batch_index, env)
    # Then the refusal reached the metrics, and every id is back untouched
    out = capfd.readouterr().out
    metric_lines = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    assert metric_lines[-1]["KinesisCallsRefused"] == [1.0]
    assert world["table"].count(S.NOT_STARTED) == 30


def test_batch_index_handler_pause_and_resume_through_the_control_item(world, dynamodb, table_name):
    # Given the operator paused the pass in the control item
    from grid_reingest.adapters.dynamodb.control import ControlTable
    from grid_reingest.domain.control import Knobs

    control = ControlTable(table_name, dynamodb)
    control.set_knobs(Knobs(paused=True))
    # When batch-index runs, it takes nothing and says why
    report = invoke(batch_index, world["index_env"])
    assert report["claimed"] == 0 and report["paused"]
    assert report["stoppedBecause"] == "paused by the operator"
    assert world["table"].count(S.NOT_STARTED) == 30
    # And once resumed (a new ceiling too), the next invocation does the work under it
    control.set_knobs(Knobs(paused=False, max_in_flight=3))
    report = invoke(batch_index, world["index_env"])
    assert report["claimed"] == 30 and not report["paused"]
    assert report["limit"] <= 3
