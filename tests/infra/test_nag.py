"""cdk-nag's AwsSolutions checks: nothing unacknowledged, and every acknowledgement says why."""

from __future__ import annotations

import pytest

from infra import constants as c

pytestmark = pytest.mark.slow

# Each acknowledged finding, and why it is acceptable, lives in the construct
# that causes it; this list stops new ones from slipping in unreviewed.
EXPECTED = {
    "AwsSolutions-L1",  # python3.13, not 3.14, on purpose (the tested interpreter)
    "AwsSolutions-IAM5[Resource::*]",  # cloudwatch:GetMetricStatistics takes only '*'
}
# A stage with an alarm topic of its own (alarmEmail: TEST in cdk.json).
OWN_TOPIC = {"AwsSolutions-SNS2"}  # CloudWatch cannot publish to an SSE topic on aws/sns


def test_nag_no_unacknowledged_finding(assembly):
    report = assembly.nag_report

    assert assembly.nag_error is None, assembly.nag_error
    violations = [
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    ]
    assert violations == []


@pytest.mark.parametrize("stage", c.STAGES)
def test_nag_every_acknowledgement_has_a_reason(assembly, stage):
    acknowledged = [
        rule
        for resource in assembly.raw(stage)["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]

    expected = EXPECTED | (OWN_TOPIC if stage == "TEST" else set())
    assert {rule["id"] for rule in acknowledged} == expected
    for rule in acknowledged:
        assert len(rule["reason"].split()) >= 8, rule
