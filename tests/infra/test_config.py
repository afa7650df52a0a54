"""Stage configuration from CDK context: every bad key named, with its stage."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from grid_reingest import settings
from infra import app as app_module
from infra import constants as c
from infra.app import build_app, cdk_json_context
from infra.config import ConfigError, load_stage_config
from infra.constructs import functions


def context_with(stage: str = "TEST", **changes: Any) -> dict[str, Any]:
    """cdk.json's context with keys of one stage replaced (None removes a key)."""
    context = copy.deepcopy(cdk_json_context())
    raw = context[c.STAGES_CONTEXT_KEY][stage]
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return context


def with_settings(stage: str = "TEST", **values: Any) -> dict[str, Any]:
    """cdk.json's `settings` map of a stage with some variables changed."""
    shipped = cdk_json_context()[c.STAGES_CONTEXT_KEY][stage]["settings"]
    return {**shipped, **values}


def problems_of(context: dict[str, Any], stage: str = "TEST") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_stage_config(context, stage)
    assert caught.value.stage == stage
    return caught.value.problems


@pytest.mark.parametrize("stage", c.STAGES)
def test_config_cdk_json_configures_every_stage(stage):
    # Given cdk.json as it ships; When each stage is loaded
    config = load_stage_config(cdk_json_context(), stage)

    # Then it is complete and names its own stage's resources
    assert config.stage == stage
    assert config.api_key_parameter.startswith(f"/{stage}/{c.GRID_STACK}/")
    assert stage in config.thrall_stream_name


def test_config_missing_stage_names_the_key_and_the_stage():
    # Given a context without PROD
    context = cdk_json_context()
    del context[c.STAGES_CONTEXT_KEY]["PROD"]

    # When the app is built, Then the error names the missing key
    with pytest.raises(ConfigError) as caught:
        build_app(context)
    assert "stages.PROD is missing" in str(caught.value)
    assert "stage PROD" in str(caught.value)


def test_config_missing_key_names_the_dotted_path():
    problems = problems_of(context_with(thrallStreamArn=None, apiKeyParameter=None))

    assert any(p.startswith("stages.TEST.thrallStreamArn is required") for p in problems)
    assert any(p.startswith("stages.TEST.apiKeyParameter is required") for p in problems)


def test_config_reports_every_problem_at_once():
    # Given three bad values in different places
    context = context_with(
        gridConcurrency=0,
        logRetentionDays=13,
        batchIndex={"scheduleRateMinutes": 0, "reservedConcurrency": 1},
    )

    # When loaded, Then each is named with what is allowed
    text = "\n".join(problems_of(context))
    assert "stages.TEST.gridConcurrency=0 is invalid" in text
    assert settings.GRID_CONCURRENCY.allowed in text
    assert "stages.TEST.logRetentionDays=13 is invalid" in text
    assert "stages.TEST.batchIndex.scheduleRateMinutes=0 is invalid" in text


def test_config_worker_values_are_checked_by_the_workers_own_parsers():
    context = context_with(
        batchCheck={"maxInFlight": 5001, "scheduleRateMinutes": 5, "reservedConcurrency": 1}
    )

    (problem,) = problems_of(context)
    assert problem.startswith("stages.TEST.batchCheck.maxInFlight=5001 is invalid")
    assert settings.CHECK_MAX_IN_FLIGHT.allowed in problem


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "thrallStreamArn",
            "arn:aws:kinesis:us-east-1:123456789012:stream/thrall",
            "in another region",
        ),
        ("thrallStreamArn", "thrall-low-priority", "is invalid"),
        (
            "thrallStreamKeyArn",
            "arn:aws:kms:eu-west-1:123456789012:alias/thrall",
            "not an alias",
        ),
        ("apiKeyParameter", "api-key", "is invalid"),
        ("gridDomainRoot", "https://media.example.org", "is invalid"),
        ("projectionFunctionUrl", "yes", "true or false"),
        ("unknownFailureAlarmShare", 1.5, "0 < x <= 1"),
        ("gridServiceUrls", {"thumbnailer": "http://x"}, "unknown service"),
        ("gridServiceUrls", {"media-api": "ftp://x"}, "http(s) URL"),
        ("backpressureStreamNames", "thrall", "list of Kinesis stream names"),
    ],
)
def test_config_rejects_a_bad_value_by_key(key, value, expected):
    (problem,) = problems_of(context_with(**{key: value}))

    assert problem.startswith(f"stages.TEST.{key}")
    assert expected in problem


def test_config_settings_map_takes_only_unwired_worker_variables():
    context = context_with(
        settings={"MAX_ATTEMPTS": 0, "MAX_IN_FLIGHT": 10, "NO_SUCH_VARIABLE": 1, "DRY_RUN": True}
    )

    problems = problems_of(context)
    text = "\n".join(problems)
    assert "stages.TEST.settings.MAX_ATTEMPTS=0 is invalid" in text
    assert "stages.TEST.settings.MAX_IN_FLIGHT: MAX_IN_FLIGHT is set by the stack itself" in text
    assert "stages.TEST.settings.NO_SUCH_VARIABLE: no worker reads NO_SUCH_VARIABLE" in text
    assert not [p for p in problems if p.startswith("stages.TEST.settings.DRY_RUN")]
    assert len(problems) == 3


def test_config_claim_lease_must_outlive_the_worker_timeout():
    context = context_with(
        settings=with_settings(**{settings.CLAIM_LEASE_SECONDS.name: c.WORKER_TIMEOUT_SECONDS})
    )

    (problem,) = problems_of(context)
    assert problem.startswith("stages.TEST.settings.CLAIM_LEASE_SECONDS=900 must exceed")


def test_config_stop_margin_must_cover_a_projection_and_the_publish_budget():
    # Given a loader timeout that makes image-projection's timeout 400 + 10 + 20 = 430 s
    context = context_with(
        settings=with_settings(**{settings.GRID_LOADER_TIMEOUT_SECONDS.name: 400})
    )

    # Then cdk.json's stop margin (480 s) is too short for it plus the budget (120 s)
    (problem,) = problems_of(context)
    assert problem.startswith("stages.TEST.settings.STOP_MARGIN_SECONDS=480 must exceed")
    assert "timeout (430 s) plus RECORD_BUDGET_SECONDS (120 s), 550 s" in problem


def test_config_stop_margin_equal_to_projection_plus_budget_is_refused():
    # Given a margin exactly the projection's timeout plus the budget (330 + 120)
    needed = 330 + int(settings.RECORD_BUDGET_SECONDS.default)
    context = context_with(settings=with_settings(**{settings.STOP_MARGIN_SECONDS.name: needed}))

    # Then it is refused: nothing would be left for the last record's write
    (problem,) = problems_of(context)
    assert problem.startswith(f"stages.TEST.settings.STOP_MARGIN_SECONDS={needed} must exceed")

    # And one second more is accepted
    ok = context_with(settings=with_settings(**{settings.STOP_MARGIN_SECONDS.name: needed + 1}))
    assert load_stage_config(ok, "TEST").setting(settings.STOP_MARGIN_SECONDS) == needed + 1


def test_config_stop_margin_must_stay_below_the_worker_timeout():
    margin = c.WORKER_TIMEOUT_SECONDS
    context = context_with(settings=with_settings(**{settings.STOP_MARGIN_SECONDS.name: margin}))

    (problem,) = problems_of(context)
    assert "below the worker timeout (900 s)" in problem


def test_config_projection_timeout_follows_the_grid_timeouts():
    config = load_stage_config(
        context_with(
            settings=with_settings(
                **{
                    settings.GRID_LOADER_TIMEOUT_SECONDS.name: 200,
                    settings.GRID_SERVICE_TIMEOUT_SECONDS.name: 5,
                }
            )
        ),
        "TEST",
    )

    assert config.projection_timeout_seconds == 200 + 5 + c.PROJECTION_TIMEOUT_MARGIN_SECONDS


def test_config_domain_root_is_optional_when_every_service_url_is_given():
    urls = {service: f"http://127.0.0.1:9000/{service}" for service in settings.SERVICES}

    config = load_stage_config(context_with(gridDomainRoot=None, gridServiceUrls=urls), "TEST")

    assert config.grid_domain_root is None
    assert config.grid_service_urls[settings.SERVICES["media-api"][0]].endswith("/media-api")


def test_config_log_retention_choices_are_the_ones_the_stack_can_build():
    assert set(functions._RETENTION) == set(c.LOG_RETENTION_DAYS)


def test_config_bad_context_makes_the_app_exit_1_naming_the_key(monkeypatch, capsys, tmp_path):
    # Given cdk.json without PROD, run outside the CDK CLI
    context = cdk_json_context()
    del context[c.STAGES_CONTEXT_KEY]["PROD"]
    monkeypatch.setattr(app_module, "cdk_json_context", lambda: context)
    monkeypatch.delenv("CDK_OUTDIR", raising=False)
    monkeypatch.setattr(app_module, "ROOT", tmp_path)  # where cdk.out would go

    # When the app runs, Then it exits 1 with the key named and no traceback
    assert app_module.main() == 1
    error = capsys.readouterr().err
    assert "stages.PROD is missing" in error
    assert "Traceback" not in error


# -- alarm topic ------------------------------------------------------------------------


def test_config_prod_without_an_alarm_target_names_both_keys_and_the_stage():
    # Given PROD with neither an alarm topic nor an email
    context = context_with("PROD", alarmTopicArn=None, alarmEmail=None)

    # When loaded, Then the one problem says which keys and which stage
    (problem,) = problems_of(context, "PROD")
    assert problem.startswith(
        "stages.PROD.alarmTopicArn or stages.PROD.alarmEmail is required for stage PROD"
    )
    assert "notify somebody" in problem


def test_config_test_stage_may_go_without_an_alarm_target():
    config = load_stage_config(context_with("TEST", alarmTopicArn=None, alarmEmail=None), "TEST")

    assert config.alarm_topic_arn is None
    assert config.alarm_email is None


def test_config_prod_with_an_email_instead_of_a_topic():
    context = context_with("PROD", alarmTopicArn=None, alarmEmail="grid@example.org")

    config = load_stage_config(context, "PROD")
    assert config.alarm_email == "grid@example.org"
    assert config.alarm_topic_arn is None


def test_config_alarm_topic_and_email_together_are_refused():
    context = context_with(
        alarmTopicArn="arn:aws:sns:eu-west-1:123456789012:alerts", alarmEmail="a@example.org"
    )

    (problem,) = problems_of(context)
    assert problem.startswith("stages.TEST.alarmTopicArn and stages.TEST.alarmEmail are both set")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("alarmEmail", "not an address", "is invalid"),
        ("alarmTopicArn", "arn:aws:sns:us-east-1:123456789012:alerts", "in another region"),
        ("alarmTopicArn", "alerts", "is invalid"),
    ],
)
def test_config_rejects_a_bad_alarm_target(key, value, expected):
    other = "alarmTopicArn" if key == "alarmEmail" else "alarmEmail"

    (problem,) = problems_of(context_with("PROD", **{key: value, other: None}), "PROD")
    assert problem.startswith(f"stages.PROD.{key}")
    assert expected in problem


# -- projections in flight ---------------------------------------------------------------


def test_config_batch_index_max_in_flight_is_refused_with_what_replaced_it():
    index = {"scheduleRateMinutes": 1, "reservedConcurrency": 1, "maxInFlight": 8}

    (problem,) = problems_of(context_with(batchIndex=index))
    assert problem.startswith("stages.TEST.batchIndex.maxInFlight is no longer read")
    assert "stages.TEST.gridConcurrency" in problem
    assert "stages.TEST.imageProjection.reservedConcurrency" in problem


def test_config_max_in_flight_is_wired_by_the_stack_not_the_settings_map():
    context = context_with(settings=with_settings(**{settings.MAX_IN_FLIGHT.name: 4}))

    (problem,) = problems_of(context)
    assert problem.startswith("stages.TEST.settings.MAX_IN_FLIGHT: MAX_IN_FLIGHT is set by")


@pytest.mark.parametrize(
    ("grid", "projection", "ceiling"), [(128, 140, 128), (64, 40, 40), (8, 8, 8)]
)
def test_config_the_pass_ceiling_is_what_the_deployment_can_hold(grid, projection, ceiling):
    # Given the Grid's concurrency setting and image-projection's reserved concurrency
    context = context_with(
        "PROD", gridConcurrency=grid, imageProjection={"reservedConcurrency": projection}
    )
    # When loaded, Then the pass's ceiling on projections in flight is the lower of the two,
    # whatever the number of batch-index invocations (they share it)
    config = load_stage_config(context, "PROD")
    assert config.pass_in_flight == ceiling


def test_config_projection_reserved_concurrency_is_required():
    (problem,) = problems_of(context_with(imageProjection=None))

    assert problem.startswith("stages.TEST.imageProjection.reservedConcurrency is required")


@pytest.mark.parametrize("stage", c.STAGES)
@pytest.mark.parametrize("worker", ("batchIndex", "batchCheck"))
def test_config_schedules_are_a_keep_alive_every_minute(stage, worker):
    raw = cdk_json_context()[c.STAGES_CONTEXT_KEY][stage][worker]

    assert raw["scheduleRateMinutes"] == 1


@pytest.mark.parametrize("stage", c.STAGES)
def test_config_checkpoint_table_is_thrall_streams_name(stage):
    # Given cdk.json as it ships; When each stage is loaded
    config = load_stage_config(cdk_json_context(), stage)

    # Then thrall's lease table is named after its stream, as the KCL names it
    assert config.thrall_checkpoint_table == config.thrall_stream_name


def test_config_checkpoint_table_is_optional():
    # Given a stage without the key, When loaded, Then no lease table is read
    config = load_stage_config(context_with(thrallCheckpointTable=None), "TEST")

    assert config.thrall_checkpoint_table is None


@pytest.mark.parametrize(
    "value", ["ab", "thrall/leases", "arn:aws:dynamodb:eu-west-1:123456789012:table/t", 42, ["t"]]
)
def test_config_checkpoint_table_refuses_what_is_no_table_name(value):
    # Given PROD's lease table set to something DynamoDB would not take as a table name
    context = context_with("PROD", thrallCheckpointTable=value)

    # When loaded, Then the key and the stage are named, with what is allowed
    with pytest.raises(ConfigError) as caught:
        load_stage_config(context, "PROD")
    (problem,) = caught.value.problems
    assert problem.startswith(f"stages.PROD.thrallCheckpointTable={value!r} is invalid")
    assert settings.THRALL_CHECKPOINT_TABLE.allowed in problem
    assert "stage PROD" in str(caught.value)


def test_config_checkpoint_table_is_wired_by_the_stack_not_the_settings_map():
    context = context_with(settings=with_settings(**{settings.THRALL_CHECKPOINT_TABLE.name: "t"}))

    (problem,) = problems_of(context)
    assert problem.startswith(
        "stages.TEST.settings.THRALL_CHECKPOINT_TABLE: THRALL_CHECKPOINT_TABLE is set by"
    )
