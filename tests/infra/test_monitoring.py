"""The dashboard reads the workers' metrics by their telemetry names; the alarms fire on errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

from grid_reingest import names
from grid_reingest.domain.states import ProgressState
from infra import constants as c
from infra.app import cdk_json_context
from tests.infra.conftest import (
    VARIANT_OVERRIDES,
    function_id,
    resources,
    single_id,
    synthesize,
)

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
        worker_metric(names.CLAIMED, names.BATCH_INDEX),
        worker_metric(names.ENQUEUED, names.BATCH_INDEX),
        worker_metric(names.FAILED, names.BATCH_INDEX),
    ]
    assert widget(body, "batch-check: images per 5 min")["metrics"] == [
        worker_metric(names.CLAIMED, names.BATCH_CHECK),
        worker_metric(names.VERIFIED, names.BATCH_CHECK),
        worker_metric(names.FAILED, names.BATCH_CHECK),
    ]
    assert (
        worker_metric(names.BACKPRESSURE_SKIPS, names.BATCH_INDEX)
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


@pytest.mark.parametrize("service", (names.IMAGE_PROJECTION, names.BATCH_INDEX, names.BATCH_CHECK))
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
@pytest.mark.parametrize("service", (names.BATCH_INDEX, names.BATCH_CHECK))
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


PROD_TOPIC = "arn:aws:sns:eu-west-1:123456789012:Cloudwatch-Alerts"  # cdk.json
# Every alarm of a stage: 3 functions' errors, 2 failure shares, 2 stalls, held
# back, 2 unread pace signals, refused Kinesis calls, 2 lost-claims, 2 expired-claims,
# 2 systemic failures, projection throttles.
# The workers' 18, and state-counts' two (infra/constructs/state_counts.py).
ALARMS_PER_STAGE = 18 + 2


def alarm_props(raw: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [
        a["Properties"]
        for a in resources(raw, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmName"] == name
    ]
    return found


def math_metrics(alarm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An alarm's metric-math inputs by id: namespace, name, dimensions and statistic."""
    return {
        m["Id"]: {
            "namespace": m["MetricStat"]["Metric"]["Namespace"],
            "name": m["MetricStat"]["Metric"]["MetricName"],
            "dimensions": {d["Name"]: d["Value"] for d in m["MetricStat"]["Metric"]["Dimensions"]},
            "stat": m["MetricStat"]["Stat"],
        }
        for m in alarm["Metrics"]
        if "MetricStat" in m
    }


def expression(alarm: dict[str, Any]) -> str:
    (found,) = [m["Expression"] for m in alarm["Metrics"] if m.get("ReturnData", True)]
    return found


def ours(name: str, service: str, stat: str = "Sum", stage: str = "TEST") -> dict[str, Any]:
    return {
        "namespace": names.NAMESPACE,
        "name": name,
        "dimensions": {names.SERVICE_DIMENSION: service, names.STAGE_DIMENSION: stage},
        "stat": stat,
    }


@pytest.mark.parametrize("stage", c.STAGES)
def test_monitoring_every_alarm_notifies_the_stage_topic(assembly, stage):
    raw = assembly.raw(stage)
    topic = (
        {"Ref": single_id(raw, "AWS::SNS::Topic")} if stage == "TEST" else PROD_TOPIC
    )  # TEST: a topic of its own (alarmEmail); PROD: an existing one (alarmTopicArn)

    alarms = resources(raw, "AWS::CloudWatch::Alarm").values()
    assert len(alarms) == ALARMS_PER_STAGE
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [topic], alarm["Properties"]["AlarmName"]


def test_monitoring_existing_topic_is_used_not_created(assembly, variant):
    assembly.template("PROD").resource_count_is("AWS::SNS::Topic", 0)
    variant.template("TEST").resource_count_is("AWS::SNS::Topic", 0)
    for alarm in resources(variant.raw("TEST"), "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [VARIANT_OVERRIDES["alarmTopicArn"]]


def test_monitoring_alarm_email_gets_a_topic_of_the_stacks_own(assembly):
    raw = assembly.raw("TEST")
    template = assembly.template("TEST")
    topic = single_id(raw, "AWS::SNS::Topic")

    template.has_resource_properties("AWS::SNS::Topic", {"TopicName": "grid-reingest-alarms-TEST"})
    template.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "email",
            "Endpoint": "grid-reingest-alerts@example.org",
            "TopicArn": {"Ref": topic},
        },
    )
    # Only this account's alarms may publish, and only over TLS.
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": topic}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ),
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Action": "sns:Publish",
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                "Condition": {
                                    "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
                                },
                            }
                        ),
                    ]
                )
            },
        },
    )


def test_monitoring_stage_without_an_alarm_target_has_no_actions(tmp_path_factory):
    # Given TEST with neither alarmTopicArn nor alarmEmail (allowed outside PROD)
    context = cdk_json_context()
    context[c.STAGES_CONTEXT_KEY]["TEST"].pop("alarmEmail")
    quiet = synthesize(tmp_path_factory.mktemp("cdk.out-quiet"), context, ["TEST"])

    # Then no topic is made and no alarm has an action
    quiet.template("TEST").resource_count_is("AWS::SNS::Topic", 0)
    for alarm in resources(quiet.raw("TEST"), "AWS::CloudWatch::Alarm").values():
        assert "AlarmActions" not in alarm["Properties"]


@pytest.mark.parametrize("stage", c.STAGES)
@pytest.mark.parametrize("service", (names.BATCH_INDEX, names.BATCH_CHECK))
def test_monitoring_stalled_pass_alarm(assembly, stage, service):
    # Given the stall alarm of one worker
    suffix = service.replace("-", "_")
    alarm = alarm_props(assembly.raw(stage), f"grid-reingest-{service}-stalled-{stage}")

    # Then it fires when the rule ticks and nothing is claimed, finished or paused,
    # for long enough that an invocation reporting only at its end is no stall
    assert expression(alarm) == (
        f"IF(FILL(ticks_{suffix}, 0) > 0 AND FILL(claimed_{suffix}, 0) + "
        f"FILL(finished_{suffix}, 0) + FILL(paused_{suffix}, 0) == 0, 1, 0)"
    )
    assert math_metrics(alarm) == {
        f"ticks_{suffix}": {
            "namespace": "AWS/Events",
            "name": "Invocations",
            "dimensions": {"RuleName": f"grid-reingest-{service}-{stage}"},
            "stat": "Sum",
        },
        f"claimed_{suffix}": ours(names.CLAIMED, service, stage=stage),
        f"finished_{suffix}": ours(names.COMPLETED, service, stage=stage),
        f"paused_{suffix}": ours(names.PAUSED, service, "Maximum", stage),
    }
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == c.STALL_ALARM_PERIODS
    assert alarm["TreatMissingData"] == "notBreaching"
    # A continuous invocation may report only at its end: the longest quiet gap is its
    # timeout plus the minute until the next tick, and must fit in fewer periods.
    assert c.STALL_ALARM_PERIODS > (c.WORKER_TIMEOUT_SECONDS + 60) // 300


def test_monitoring_held_back_alarm_watches_the_iterator_age_while_the_rule_ticks(assembly):
    alarm = alarm_props(assembly.raw("TEST"), "grid-reingest-batch-index-held-back-TEST")

    assert expression(alarm) == "IF(FILL(ticks_batch_index, 0) > 0 AND age_0 > 60000, 1, 0)"
    assert math_metrics(alarm)["age_0"] == {
        "namespace": "AWS/Kinesis",
        "name": "GetRecords.IteratorAgeMilliseconds",
        "dimensions": {"StreamName": "media-service-TEST-ThrallLowPriorityMessageStream"},
        "stat": "Maximum",
    }
    assert math_metrics(alarm)["ticks_batch_index"]["dimensions"] == {
        "RuleName": "grid-reingest-batch-index-TEST"
    }
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == c.STALL_ALARM_PERIODS


def test_monitoring_held_back_alarm_takes_the_highest_of_the_watched_streams(variant):
    alarm = alarm_props(variant.raw("TEST"), "grid-reingest-batch-index-held-back-TEST")

    assert expression(alarm) == (
        "IF(FILL(ticks_batch_index, 0) > 0 AND MAX([age_0, age_1]) > 60000, 1, 0)"
    )
    assert [math_metrics(alarm)[f"age_{i}"]["dimensions"]["StreamName"] for i in (0, 1)] == (
        VARIANT_OVERRIDES["backpressureStreamNames"]
    )


@pytest.mark.parametrize(
    ("service", "part", "metric"),
    [
        (names.BATCH_INDEX, "kinesis-refused", names.KINESIS_REFUSED),
        (names.BATCH_INDEX, "lost-claims", names.LOST_CLAIMS),
        (names.BATCH_CHECK, "lost-claims", names.LOST_CLAIMS),
        (names.BATCH_INDEX, "expired-claims", names.EXPIRED_CLAIMS),
        (names.BATCH_CHECK, "expired-claims", names.EXPIRED_CLAIMS),
        (names.BATCH_INDEX, "systemic-failures", names.SYSTEMIC_FAILURES),
        (names.BATCH_CHECK, "systemic-failures", names.SYSTEMIC_FAILURES),
    ],
)
def test_monitoring_safety_alarm_fires_on_the_first_one(assembly, service, part, metric):
    assembly.template("TEST").has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": f"grid-reingest-{service}-{part}-TEST",
            "Namespace": names.NAMESPACE,
            "MetricName": metric,
            "Dimensions": [
                {"Name": names.SERVICE_DIMENSION, "Value": service},
                {"Name": names.STAGE_DIMENSION, "Value": "TEST"},
            ],
            "Statistic": "Sum",
            "Period": 300,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "EvaluationPeriods": 1,
            "TreatMissingData": "notBreaching",
        },
    )


@pytest.mark.parametrize(
    ("part", "metric"),
    [
        ("checkpoints-unread", names.CHECKPOINTS_UNREAD),
        ("iterator-age-unread", names.ITERATOR_AGE_UNREAD),
    ],
)
def test_monitoring_an_unreadable_pace_signal_alarms_when_it_lasts(assembly, part, metric):
    # Five minutes of pace steps (one every 15 s) in a period: it lasts, however the
    # invocations that counted them fall in periods
    assembly.template("TEST").has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": f"grid-reingest-batch-index-{part}-TEST",
            "MetricName": metric,
            "Threshold": c.UNREAD_ALARM_STEPS,
            "EvaluationPeriods": 1,
        },
    )
    assert c.UNREAD_ALARM_STEPS * 15 == 300


def test_monitoring_projection_throttles_alarm(assembly):
    raw = assembly.raw("TEST")

    assembly.template("TEST").has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": "grid-reingest-image-projection-throttles-TEST",
            "Namespace": "AWS/Lambda",
            "MetricName": "Throttles",
            "Dimensions": [
                {"Name": "FunctionName", "Value": {"Ref": function_id(raw, names.IMAGE_PROJECTION)}}
            ],
            "Statistic": "Sum",
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "EvaluationPeriods": 1,
        },
    )


def test_monitoring_alarm_status_widget_lists_every_alarm(assembly):
    raw = assembly.raw("TEST")
    statuses = [w for w in dashboard(raw)["widgets"] if w["type"] == "alarm"]
    alarm_names = {
        a["Properties"]["AlarmName"] for a in resources(raw, "AWS::CloudWatch::Alarm").values()
    }

    listed = {
        arn.rsplit(":", 1)[-1] for status in statuses for arn in status["properties"]["alarms"]
    }
    assert listed == alarm_names


def dashboard_metric_names(body: dict[str, Any], namespace: str, service: str) -> set[str]:
    """Every metric of `namespace` and `service` that some graph of the dashboard shows."""
    found = set()
    for w in body["widgets"]:
        for m in w["properties"].get("metrics", []):
            if m[0] == namespace and service in m:
                found.add(m[1])
    return found


def test_monitoring_dashboard_shows_every_projection_metric(assembly):
    shown = dashboard_metric_names(
        dashboard(assembly.raw("TEST")), names.NAMESPACE, names.IMAGE_PROJECTION
    )

    assert set(names.PROJECTION_METRICS) <= shown


@pytest.mark.parametrize("service", (names.BATCH_INDEX, names.BATCH_CHECK))
def test_monitoring_dashboard_shows_the_pace(assembly, service):
    shown = dashboard_metric_names(dashboard(assembly.raw("TEST")), names.NAMESPACE, service)

    pace = {
        names.CONTROL_LIMIT,
        names.CONTROL_RATE,
        names.PAUSED,
        names.OVERLOAD,
        names.INFRA_RELEASED,
        names.EXPIRED_CLAIMS,
        names.LOST_CLAIMS,
    }
    assert pace <= shown


def test_monitoring_dashboard_shows_refused_kinesis_calls(assembly):
    shown = dashboard_metric_names(
        dashboard(assembly.raw("TEST")), names.NAMESPACE, names.BATCH_INDEX
    )

    assert names.KINESIS_REFUSED in shown
