"""The dashboard reads the workers' metrics by their telemetry names; the alarms fire on errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

from grid_reingest import names
from grid_reingest.domain.states import ProgressState
from infra import constants as c
from tests.infra.conftest import VARIANT_OVERRIDES, function_id, resources, single_id

pytestmark = pytest.mark.slow


def dashboard(raw: dict[str, Any]) -> dict[str, Any]:
    """The dashboard body as JSON (the region placeholder filled in)."""
    body = raw["Resources"][single_id(raw, "AWS::CloudWatch::Dashboard")]["Properties"][
        "DashboardBody"
    ]
    parts = body["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else "eu-west-1" for p in parts)
    return json.loads(text)


def widget(body: dict[str, Any], title: str) -> dict[str, Any]:
    (found,) = [w for w in body["widgets"] if w["properties"].get("title") == title]
    return found["properties"]


def worker_metric(name: str, service: str, stage: str = "TEST") -> list[Any]:
    return [
        names.NAMESPACE,
        name,
        names.SERVICE_DIMENSION,
        service,
        names.STAGE_DIMENSION,
        stage,
        {"stat": "Sum"},
    ]


def test_monitoring_dashboard_is_named_after_the_stage(assembly):
    assembly.template("TEST").has_resource_properties(
        "AWS::CloudWatch::Dashboard", {"DashboardName": "grid-reingest-TEST"}
    )


def test_monitoring_dashboard_says_how_to_start(assembly):
    (text,) = [w for w in dashboard(assembly.raw("TEST"))["widgets"] if w["type"] == "text"]

    assert (
        "aws events enable-rule --name grid-reingest-batch-index-TEST"
        in text["properties"]["markdown"]
    )


def test_monitoring_dashboard_shows_every_state(assembly):
    graph = widget(dashboard(assembly.raw("TEST")), "Images moved into each state, per 5 min")
    expressions = [m[0]["expression"] for m in graph["metrics"]]

    assert len(expressions) == len(ProgressState)
    for state, expression in zip(ProgressState, expressions, strict=True):
        assert f'MetricName="{names.state_metric(int(state))}"' in expression
        assert 'stage="TEST"' in expression
        assert expression.startswith("SUM(SEARCH('{GridReingest,service,stage}")


def test_monitoring_dashboard_throughput_uses_telemetry_names(assembly):
    body = dashboard(assembly.raw("TEST"))

    assert widget(body, "batch-index: images per 5 min")["metrics"] == [
        worker_metric(names.CLAIMED, c.BATCH_INDEX),
        worker_metric(names.ENQUEUED, c.BATCH_INDEX),
        worker_metric(names.FAILED, c.BATCH_INDEX),
    ]
    assert widget(body, "batch-check: images per 5 min")["metrics"] == [
        worker_metric(names.CLAIMED, c.BATCH_CHECK),
        worker_metric(names.VERIFIED, c.BATCH_CHECK),
        worker_metric(names.FAILED, c.BATCH_CHECK),
    ]
    assert (
        worker_metric(names.BACKPRESSURE_SKIPS, c.BATCH_INDEX)
        in widget(body, "batch-index: runs that stopped short")["metrics"]
    )


def test_monitoring_dashboard_watches_thralls_iterator_age(assembly):
    graph = widget(dashboard(assembly.raw("TEST")), "Back-pressure: thrall's iterator age")

    assert graph["metrics"] == [
        [
            "AWS/Kinesis",
            "GetRecords.IteratorAgeMilliseconds",
            "StreamName",
            "media-service-TEST-ThrallLowPriorityMessageStream",
            {"stat": "Maximum"},
        ]
    ]
    assert graph["annotations"]["horizontal"][0]["value"] == 60000


def test_monitoring_dashboard_watches_the_configured_streams(variant):
    graph = widget(dashboard(variant.raw("TEST")), "Back-pressure: thrall's iterator age")

    assert [m[3] for m in graph["metrics"]] == VARIANT_OVERRIDES["backpressureStreamNames"]


@pytest.mark.parametrize("service", (c.IMAGE_PROJECTION, c.BATCH_INDEX, c.BATCH_CHECK))
def test_monitoring_error_alarm_per_function(assembly, service):
    raw = assembly.raw("TEST")

    assembly.template("TEST").has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": f"grid-reingest-{service}-errors-TEST",
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function_id(raw, service)}}],
            "Statistic": "Sum",
            "Period": 300,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        },
    )


@pytest.mark.parametrize(("stage", "share"), [("TEST", 0.2), ("PROD", 0.1)])
@pytest.mark.parametrize("service", (c.BATCH_INDEX, c.BATCH_CHECK))
def test_monitoring_unknown_failure_share_alarm(assembly, stage, share, service):
    suffix = service.replace("-", "_")

    assembly.template(stage).has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": f"grid-reingest-{service}-unknown-failures-{stage}",
            "Threshold": share,
            "ComparisonOperator": "GreaterThanThreshold",
            "EvaluationPeriods": c.FAILURE_ALARM_PERIODS,
            "DatapointsToAlarm": c.FAILURE_ALARM_PERIODS,
            "Metrics": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Expression": f"IF(claimed_{suffix} > 0, failed_{suffix} / "
                            f"claimed_{suffix}, 0)",
                            "ReturnData": True,
                        }
                    ),
                    Match.object_like(
                        {
                            "Id": f"failed_{suffix}",
                            "MetricStat": Match.object_like(
                                {
                                    "Metric": {
                                        "Namespace": names.NAMESPACE,
                                        "MetricName": names.FAILED,
                                        "Dimensions": [
                                            {"Name": names.SERVICE_DIMENSION, "Value": service},
                                            {"Name": names.STAGE_DIMENSION, "Value": stage},
                                        ],
                                    },
                                    "Stat": "Sum",
                                }
                            ),
                        }
                    ),
                ]
            ),
        },
    )


def test_monitoring_alarms_notify_nobody_unless_a_topic_is_configured(assembly, variant):
    for alarm in resources(assembly.raw("TEST"), "AWS::CloudWatch::Alarm").values():
        assert "AlarmActions" not in alarm["Properties"]
    alarms = resources(variant.raw("TEST"), "AWS::CloudWatch::Alarm").values()
    assert len(alarms) == 5
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [VARIANT_OVERRIDES["alarmTopicArn"]]
