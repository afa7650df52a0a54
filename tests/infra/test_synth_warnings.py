"""What `make synth` warns about before a real deploy: placeholders, a lease table not named
as its stream, a runtime near its deprecation."""

from __future__ import annotations

from datetime import date

import pytest

from infra import constants as c
from infra.app import cdk_json_context
from infra.config import load_stage_config
from infra.synth_warnings import runtime_warning, stage_warnings
from tests.infra.test_config import context_with

# A stage filled in as an operator would, from a Grid account (not AWS's example one).
STREAM = "media-service-TEST-thrall-low-priority"
REAL = {
    "thrallStreamArn": f"arn:aws:kinesis:eu-west-1:111122223333:stream/{STREAM}",
    "thrallCheckpointTable": STREAM,
    "thrallStreamKeyArn": "arn:aws:kms:eu-west-1:111122223333:key/"
    "6f1c2a4e-0b7d-4c1e-9a53-2d8e7f10a9b4",
    "alarmEmail": None,
    "alarmTopicArn": "arn:aws:sns:eu-west-1:111122223333:grid-alerts",
}


@pytest.mark.parametrize("stage", c.STAGES)
def test_cdk_json_as_shipped_warns_of_each_placeholder_by_key(stage):
    found = stage_warnings(load_stage_config(cdk_json_context(), stage))
    keys = {line.split(" ", 1)[0] for line in found}
    assert f"stages.{stage}.thrallStreamArn" in keys
    assert f"stages.{stage}.thrallStreamKeyArn" in keys
    assert any("placeholder account 123456789012" in line for line in found)
    assert any("placeholder stream" in line for line in found)
    assert all('docs/infra.md, "A first real pass"' in line for line in found)


def test_a_stage_filled_from_a_grid_account_warns_of_nothing():
    config = load_stage_config(context_with("TEST", **REAL), "TEST")
    assert stage_warnings(config) == []


def test_a_lease_table_not_named_as_its_stream_is_said():
    config = load_stage_config(
        context_with("TEST", **{**REAL, "thrallCheckpointTable": "thrall-leases"}), "TEST"
    )
    (warning,) = stage_warnings(config)
    assert "thrallCheckpointTable is thrall-leases, not media-service-TEST-thrall-low-priority" in (
        warning
    )
    assert "named exactly as its stream" in warning


def test_a_runtime_within_six_months_of_its_deprecation_is_warned_of():
    assert runtime_warning("python3.13", date(2028, 6, 1)) is None
    soon = runtime_warning("python3.13", date(2029, 1, 15))
    assert soon is not None and "python3.13 is deprecated on 2029-06-30" in soon
    gone = runtime_warning("python3.11", date(2026, 7, 1))
    assert gone is not None and "deprecated since 2026-06-30" in gone
