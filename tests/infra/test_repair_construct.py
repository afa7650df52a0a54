"""The scheduled repair in the synthesized app: off by default; on, least privilege."""

from __future__ import annotations

import copy

import pytest

from grid_reingest import names
from infra import constants as c
from infra.app import cdk_json_context
from infra.config import ConfigError, load_stage_config
from tests.infra.conftest import (
    Assembly,
    function_props,
    resources,
    role_statements,
    synthesize,
)

TOPIC = "arn:aws:sns:eu-west-1:123456789012:grid-reingest-reports"
REPAIR = {
    "schedule": "cron(0 3 ? * SUN *)",
    "sourceBucket": "media-service-test-imagebucket",
    "reportTopicArn": TOPIC,
}


@pytest.fixture(scope="module")
def with_repair(tmp_path_factory) -> Assembly:
    context = cdk_json_context()
    context[c.STAGES_CONTEXT_KEY]["TEST"]["repair"] = REPAIR
    return synthesize(tmp_path_factory.mktemp("cdk.out-repair"), context, ["TEST"])


def repair_context(**repair) -> dict:
    context = copy.deepcopy(cdk_json_context())
    context[c.STAGES_CONTEXT_KEY]["TEST"]["repair"] = repair
    return context


def test_repair_is_off_unless_a_stage_asks(assembly):
    for stage in c.STAGES:
        raw = assembly.raw(stage)
        functions = [
            v["Properties"]["FunctionName"]
            for v in resources(raw, "AWS::Lambda::Function").values()
        ]
        assert c.resource_name(names.REPAIR, stage) not in functions
        assert names.REPAIR_FUNCTION_OUTPUT not in raw.get("Outputs", {})


def test_repair_function_runs_on_its_schedule_switched_on(with_repair):
    raw = with_repair.raw("TEST")
    props = function_props(raw, names.REPAIR)
    assert props["Timeout"] == 900 and props["ReservedConcurrentExecutions"] == 1
    assert props["Architectures"] == ["arm64"]
    env = props["Environment"]["Variables"]
    assert env["REPAIR_SOURCE_BUCKET"] == REPAIR["sourceBucket"]
    assert env["REPORT_TOPIC_ARN"] == TOPIC
    assert env["INDEX_RULE_NAME"] == "grid-reingest-batch-index-TEST"
    assert env["CHECK_RULE_NAME"] == "grid-reingest-batch-check-TEST"
    (rule,) = [
        r["Properties"]
        for r in resources(raw, "AWS::Events::Rule").values()
        if r["Properties"]["Name"] == "grid-reingest-repair-TEST"
    ]
    assert rule["ScheduleExpression"] == REPAIR["schedule"]
    assert rule["State"] == "ENABLED"
    assert raw["Outputs"][names.REPAIR_RULE_OUTPUT]
    alarms = [
        a["Properties"]["AlarmName"] for a in resources(raw, "AWS::CloudWatch::Alarm").values()
    ]
    assert "grid-reingest-repair-refused-TEST" in alarms
    assert "grid-reingest-repair-errors-TEST" in alarms


def test_repair_may_touch_only_what_it_needs(with_repair):
    statements = role_statements(with_repair.raw("TEST"), names.REPAIR)
    actions = {
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert "s3:ListBucket" in actions and "s3:GetObject" not in actions
    assert "sns:Publish" in actions
    assert "events:EnableRule" in actions and "events:DisableRule" not in actions
    assert not {a for a in actions if a.startswith("kinesis:") or a == "dynamodb:Scan"}
    (publish,) = [s for s in statements if s["Action"] == "sns:Publish"]
    assert publish["Resource"] == TOPIC


def test_repair_the_workers_publish_the_report_of_the_pass_they_end(with_repair):
    raw = with_repair.raw("TEST")
    for service in (names.BATCH_INDEX, names.BATCH_CHECK):
        env = function_props(raw, service)["Environment"]["Variables"]
        assert env["REPORT_TOPIC_ARN"] == TOPIC
        publish = [s for s in role_statements(raw, service) if s["Action"] == "sns:Publish"]
        assert [s["Resource"] for s in publish] == [TOPIC]


@pytest.mark.parametrize(
    ("repair", "expected"),
    [
        ({**REPAIR, "colour": "blue"}, "unknown ['colour']"),
        ({**REPAIR, "inventory": "s3://inv/images/"}, "set exactly one of sourceBucket"),
        ({**REPAIR, "schedule": "every sunday"}, "stages.TEST.repair.schedule='every sunday'"),
        ({k: v for k, v in REPAIR.items() if k != "reportTopicArn"}, "reportTopicArn is required"),
        ({**REPAIR, "sourceBucket": None, "inventory": "images/"}, "repair.inventory='images/'"),
    ],
)
def test_repair_config_refuses_what_is_wrong_by_key(repair, expected):
    with pytest.raises(ConfigError) as caught:
        load_stage_config(repair_context(**repair), "TEST")
    assert expected in str(caught.value)


@pytest.fixture(scope="module")
def from_inventory(tmp_path_factory) -> Assembly:
    context = repair_context(
        schedule="rate(7 days)", inventory="s3://inventories/images/", reportTopicArn=TOPIC
    )
    return synthesize(tmp_path_factory.mktemp("cdk.out-repair-inventory"), context, ["TEST"])


def test_repair_from_an_inventory_reads_only_under_its_prefix(from_inventory):
    statements = role_statements(from_inventory.raw("TEST"), names.REPAIR)
    (get,) = [s for s in statements if s["Action"] == "s3:GetObject"]
    assert get["Resource"] == "arn:aws:s3:::inventories/images/*"
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["images/*"]}}


@pytest.mark.parametrize("source", ["with_repair", "from_inventory"])
def test_repair_raises_no_unacknowledged_nag_finding(source, request):
    built = request.getfixturevalue(source)
    assert built.nag_error is None, built.nag_error
    violations = [
        (violation["ruleName"], construct["constructPath"])
        for plugin in built.nag_report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    ]
    assert violations == []
