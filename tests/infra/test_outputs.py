"""Outputs: what scripts find with DescribeStacks on `grid-reingest-<STAGE>`."""

from __future__ import annotations

import pytest

from grid_reingest import names
from infra import constants as c
from tests.infra.conftest import function_id, resources, single_id

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stage", c.STAGES)
def test_outputs_name_every_resource_a_script_needs(assembly, stage):
    raw = assembly.raw(stage)
    rules = {v["Properties"]["Name"]: k for k, v in resources(raw, "AWS::Events::Rule").items()}

    expected = {
        names.STATE_TABLE_OUTPUT: {"Ref": single_id(raw, "AWS::DynamoDB::Table")},
        names.DASHBOARD_OUTPUT: {"Ref": single_id(raw, "AWS::CloudWatch::Dashboard")},
        **{
            key: {"Ref": function_id(raw, service, stage)}
            for service, key in names.FUNCTION_OUTPUTS.items()
        },
        **{
            key: {"Ref": rules[c.resource_name(service, stage)]}
            for service, key in names.RULE_OUTPUTS.items()
        },
    }
    assert {key: output["Value"] for key, output in raw["Outputs"].items()} == expected


@pytest.mark.parametrize("stage", c.STAGES)
def test_outputs_are_not_exported(assembly, stage):
    for output in assembly.raw(stage)["Outputs"].values():
        assert "Export" not in output
        assert output["Description"]
