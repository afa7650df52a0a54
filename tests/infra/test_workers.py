"""The three Lambdas, their environments and their schedules."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from grid_reingest import names, settings
from infra import constants as c
from infra.app import cdk_json_context
from infra.config import load_stage_config
from infra.constructs.environments import check_environments, function_environments
from tests.infra.conftest import function_id, function_props, resources

pytestmark = pytest.mark.slow

SCHEDULED = (names.BATCH_INDEX, names.BATCH_CHECK)
TEST_STREAM = (
    "arn:aws:kinesis:eu-west-1:123456789012:stream/"
    "media-service-TEST-ThrallLowPriorityMessageStream"
)
TEST_KEY_PARAMETER = "/TEST/media-service/grid-reingest/api-key"


@pytest.mark.parametrize(
    ("service", "timeout", "memory"),
    [
        (names.IMAGE_PROJECTION, 330, 512),  # loader 300 + services 10 + margin 20
        (names.BATCH_INDEX, 900, 1024),
        (names.BATCH_CHECK, 900, 256),
    ],
)
def test_workers_function_runtime_handler_and_sizing(assembly, service, timeout, memory):
    assembly.template("TEST").has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": c.resource_name(service, "TEST"),
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "Handler": f"grid_reingest.handlers.{service.replace('-', '_')}.handler",
            "Timeout": timeout,
            "MemorySize": memory,
        },
    )


def test_workers_share_one_code_asset(assembly):
    raw = assembly.raw("TEST")
    codes = {
        str(function_props(raw, service)["Code"])
        for service in (names.IMAGE_PROJECTION, *SCHEDULED)
    }

    assert len(codes) == 1
    assert assembly.asset_dir("TEST").is_dir()  # the one zip-packaged asset of the stack


@pytest.mark.parametrize(
    ("stage", "service", "reserved"),
    [
        ("TEST", names.BATCH_INDEX, 1),
        ("TEST", names.BATCH_CHECK, 1),
        ("TEST", names.IMAGE_PROJECTION, 10),
        ("PROD", names.BATCH_INDEX, 2),
        ("PROD", names.BATCH_CHECK, 2),
        ("PROD", names.IMAGE_PROJECTION, 140),
    ],
)
def test_workers_reserved_concurrency_from_context(assembly, stage, service, reserved):
    props = function_props(assembly.raw(stage), service, stage)

    assert props["ReservedConcurrentExecutions"] == reserved


@pytest.mark.parametrize("stage", c.STAGES)
def test_workers_projection_reserved_concurrency_covers_batch_index_in_flight(assembly, stage):
    # Given what the pass can have in flight: MAX_IN_FLIGHT, every batch-index invocation
    # together (they share the controller's limit)
    raw = assembly.raw(stage)
    index = function_props(raw, names.BATCH_INDEX, stage)
    in_flight = int(index["Environment"]["Variables"][settings.MAX_IN_FLIGHT.name])

    # Then image-projection may run that many at once, and the Grid's setting allows them
    projection = function_props(raw, names.IMAGE_PROJECTION, stage)
    assert projection["ReservedConcurrentExecutions"] >= in_flight
    assert int(index["Environment"]["Variables"][settings.GRID_CONCURRENCY.name]) >= in_flight


def test_workers_batch_index_environment(assembly):
    env = function_props(assembly.raw("TEST"), names.BATCH_INDEX)["Environment"]["Variables"]

    assert env == {
        settings.STAGE.name: "TEST",
        settings.STATE_TABLE_NAME.name: "grid-reingest-TEST",
        settings.INDEX_START_STATE.name: settings.INDEX_START_STATE.default,
        settings.MAX_ATTEMPTS.name: "3",
        settings.CLAIM_LEASE_SECONDS.name: settings.CLAIM_LEASE_SECONDS.default,
        settings.STOP_MARGIN_SECONDS.name: "480",
        # image-projection's own timeout: loader 300 + service 10 + margin 20
        settings.PROJECTION_TIMEOUT_SECONDS.name: "330",
        settings.RECORD_BUDGET_SECONDS.name: settings.RECORD_BUDGET_SECONDS.default,
        settings.MAX_MESSAGE_BYTES.name: settings.MAX_MESSAGE_BYTES.default,
        settings.THRALL_STREAM_NAME.name: TEST_STREAM,
        settings.MAX_ITERATOR_AGE_MS.name: "60000",
        settings.THRALL_CHECKPOINT_TABLE.name: "media-service-TEST-ThrallLowPriorityMessageStream",
        settings.SCHEDULE_RULE_NAME.name: "grid-reingest-batch-index-TEST",
        settings.PROJECTION_FUNCTION_NAME.name: "grid-reingest-image-projection-TEST",
        settings.BREAKER_FAILURE_SHARE.name: settings.BREAKER_FAILURE_SHARE.default,
        settings.BREAKER_MIN_RESULTS.name: settings.BREAKER_MIN_RESULTS.default,
        settings.GRID_CONCURRENCY.name: "8",
        settings.DRY_RUN.name: "false",
        settings.MAX_IN_FLIGHT.name: "8",
        settings.PACE_REFRESH_SECONDS.name: settings.PACE_REFRESH_SECONDS.default,
    }


def test_workers_batch_check_environment(assembly):
    env = function_props(assembly.raw("TEST"), names.BATCH_CHECK)["Environment"]["Variables"]

    assert env == {
        settings.STAGE.name: "TEST",
        settings.STATE_TABLE_NAME.name: "grid-reingest-TEST",
        settings.CHECK_START_STATE.name: settings.CHECK_START_STATE.default,
        settings.INDEX_START_STATE.name: settings.INDEX_START_STATE.default,
        settings.CHECK_MIN_AGE_SECONDS.name: settings.CHECK_MIN_AGE_SECONDS.default,
        settings.CHECK_FIRST_LOOK_SECONDS.name: settings.CHECK_FIRST_LOOK_SECONDS.default,
        settings.MAX_ATTEMPTS.name: "3",
        settings.CLAIM_LEASE_SECONDS.name: settings.CLAIM_LEASE_SECONDS.default,
        settings.CHECK_STOP_MARGIN_SECONDS.name: settings.CHECK_STOP_MARGIN_SECONDS.default,
        settings.RECORD_BUDGET_SECONDS.name: settings.RECORD_BUDGET_SECONDS.default,
        settings.BREAKER_FAILURE_SHARE.name: settings.BREAKER_FAILURE_SHARE.default,
        settings.BREAKER_MIN_RESULTS.name: settings.BREAKER_MIN_RESULTS.default,
        settings.CHECK_MAX_IN_FLIGHT.name: "8",
        settings.PACE_REFRESH_SECONDS.name: settings.PACE_REFRESH_SECONDS.default,
        settings.SCHEDULE_RULE_NAME.name: "grid-reingest-batch-check-TEST",
        settings.WAKE_INDEX_RULE_NAME.name: "grid-reingest-batch-index-TEST",
        settings.GRID_DOMAIN_ROOT.name: "test.dev-gutools.co.uk",
        settings.GRID_API_KEY_PARAMETER.name: TEST_KEY_PARAMETER,
        settings.GRID_LOADER_TIMEOUT_SECONDS.name: settings.GRID_LOADER_TIMEOUT_SECONDS.default,
        settings.GRID_SERVICE_TIMEOUT_SECONDS.name: settings.GRID_SERVICE_TIMEOUT_SECONDS.default,
        settings.GRID_MAX_LOADER_BODY_BYTES.name: settings.GRID_MAX_LOADER_BODY_BYTES.default,
        settings.GRID_MAX_SERVICE_BODY_BYTES.name: settings.GRID_MAX_SERVICE_BODY_BYTES.default,
        settings.GRID_CONCURRENCY.name: "8",
    }


def test_workers_image_projection_environment(assembly):
    env = function_props(assembly.raw("TEST"), names.IMAGE_PROJECTION)["Environment"]["Variables"]

    assert env == {
        settings.STAGE.name: "TEST",
        settings.MAX_MESSAGE_BYTES.name: settings.MAX_MESSAGE_BYTES.default,
        settings.GRID_DOMAIN_ROOT.name: "test.dev-gutools.co.uk",
        settings.GRID_API_KEY_PARAMETER.name: TEST_KEY_PARAMETER,
        settings.GRID_LOADER_TIMEOUT_SECONDS.name: settings.GRID_LOADER_TIMEOUT_SECONDS.default,
        settings.GRID_SERVICE_TIMEOUT_SECONDS.name: settings.GRID_SERVICE_TIMEOUT_SECONDS.default,
        settings.GRID_MAX_LOADER_BODY_BYTES.name: settings.GRID_MAX_LOADER_BODY_BYTES.default,
        settings.GRID_MAX_SERVICE_BODY_BYTES.name: settings.GRID_MAX_SERVICE_BODY_BYTES.default,
        settings.GRID_CONCURRENCY.name: "8",
    }


@pytest.mark.parametrize("stage", c.STAGES)
@pytest.mark.parametrize(
    ("service", "cls"),
    [
        (names.IMAGE_PROJECTION, settings.ProjectionSettings),
        (names.BATCH_INDEX, settings.BatchIndexSettings),
        (names.BATCH_CHECK, settings.BatchCheckSettings),
    ],
)
def test_workers_environment_loads_as_the_worker_will(assembly, stage, service, cls):
    # Given the environment exactly as deployed (inside Lambda: no plain API key allowed)
    env = function_props(assembly.raw(stage), service, stage)["Environment"]["Variables"]

    # When the worker loads its settings from it, Then nothing is missing or invalid
    loaded = settings.load(
        cls, {**env, "AWS_LAMBDA_FUNCTION_NAME": c.resource_name(service, stage)}
    )
    assert loaded.stage == stage
    # MAX_IN_FLIGHT is wired whether or not batch-index's settings read it yet.
    wired = {settings.MAX_IN_FLIGHT.name} if service == names.BATCH_INDEX else set()
    assert set(env) <= {v.name for v in settings.variables(cls)} | wired


def test_workers_batch_index_never_talks_to_the_grid_itself(assembly):
    env = function_props(assembly.raw("TEST"), names.BATCH_INDEX)["Environment"]["Variables"]
    grid_only = {v.name for v in settings.variables(settings.GridSettings)} - {
        settings.GRID_CONCURRENCY.name
    }

    assert not grid_only & set(env)


@pytest.mark.parametrize("service", SCHEDULED)
def test_workers_schedule_is_a_keep_alive_deployed_disabled_targeting_its_worker(assembly, service):
    raw = assembly.raw("TEST")

    assembly.template("TEST").has_resource_properties(
        "AWS::Events::Rule",
        {
            "Name": c.resource_name(service, "TEST"),
            "ScheduleExpression": "rate(1 minute)",
            "State": "DISABLED",
            "Targets": [
                {"Arn": {"Fn::GetAtt": [function_id(raw, service), "Arn"]}, "Id": Match.any_value()}
            ],
        },
    )


@pytest.mark.parametrize("service", SCHEDULED)
def test_workers_schedule_may_invoke_only_its_worker(assembly, service):
    raw = assembly.raw("TEST")
    (rule_id,) = [
        k
        for k, v in resources(raw, "AWS::Events::Rule").items()
        if v["Properties"]["Name"] == c.resource_name(service, "TEST")
    ]

    assembly.template("TEST").has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "Principal": "events.amazonaws.com",
            "FunctionName": {"Fn::GetAtt": [function_id(raw, service), "Arn"]},
            "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]},
        },
    )


def test_workers_only_the_two_workers_are_scheduled(assembly):
    assembly.template("TEST").resource_count_is("AWS::Events::Rule", 2)


@pytest.mark.parametrize("service", SCHEDULED)
def test_workers_keep_alive_ticks_are_dropped_never_retried_or_queued(assembly, service):
    raw = assembly.raw("TEST")

    assembly.template("TEST").has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": function_id(raw, service)},
            "MaximumRetryAttempts": 0,
            "MaximumEventAgeInSeconds": 60,  # a minute: the next tick is due
        },
    )


@pytest.mark.parametrize(
    ("stage", "days", "policy"), [("TEST", 14, "Delete"), ("PROD", 90, "Retain")]
)
@pytest.mark.parametrize("service", (names.IMAGE_PROJECTION, *SCHEDULED))
def test_workers_log_group_retention(assembly, stage, days, policy, service):
    raw = assembly.raw(stage)
    name = f"/aws/lambda/{c.resource_name(service, stage)}"
    (log_id,) = [
        k
        for k, v in resources(raw, "AWS::Logs::LogGroup").items()
        if v["Properties"]["LogGroupName"] == name
    ]

    assert raw["Resources"][log_id]["Properties"]["RetentionInDays"] == days
    assert raw["Resources"][log_id]["DeletionPolicy"] == policy
    assert function_props(raw, service, stage)["LoggingConfig"] == {"LogGroup": {"Ref": log_id}}


def test_workers_projection_url_is_off_by_default(assembly):
    assembly.template("TEST").resource_count_is("AWS::Lambda::Url", 0)
    assembly.template("PROD").resource_count_is("AWS::Lambda::Url", 0)


def test_workers_projection_url_when_a_stage_asks(variant):
    raw = variant.raw("TEST")

    variant.template("TEST").has_resource_properties(
        "AWS::Lambda::Url",
        {
            "AuthType": "NONE",
            "TargetFunctionArn": {"Fn::GetAtt": [function_id(raw, names.IMAGE_PROJECTION), "Arn"]},
        },
    )
    assert names.PROJECTION_URL_OUTPUT in raw["Outputs"]


def test_workers_variant_environment_carries_the_optional_settings(variant):
    raw = variant.raw("TEST")
    index = function_props(raw, names.BATCH_INDEX)["Environment"]["Variables"]
    check = function_props(raw, names.BATCH_CHECK)["Environment"]["Variables"]

    assert index[settings.BACKPRESSURE_STREAMS.name] == "thrall-a,thrall-b"
    assert check[settings.SERVICES["media-api"][0]] == "http://127.0.0.1:9999/api"
    assert settings.SERVICES["media-api"][0] not in index


def test_workers_checkpoint_table_only_when_a_stage_names_it():
    # Given TEST as shipped and TEST without thrall's lease table
    context = cdk_json_context()
    named = function_environments(load_stage_config(context, "TEST"))
    del context[c.STAGES_CONTEXT_KEY]["TEST"]["thrallCheckpointTable"]
    unnamed = function_environments(load_stage_config(context, "TEST"))
    variable = settings.THRALL_CHECKPOINT_TABLE.name

    # Then batch-index alone gets the variable, and only when it is named
    assert named[names.BATCH_INDEX][variable] == "media-service-TEST-ThrallLowPriorityMessageStream"
    assert variable not in named[names.BATCH_CHECK]
    assert variable not in named[names.IMAGE_PROJECTION]
    assert variable not in unnamed[names.BATCH_INDEX]
    # and batch-index's settings load either way
    for environments in (named, unnamed):
        check_environments(load_stage_config(context, "TEST"), environments)
