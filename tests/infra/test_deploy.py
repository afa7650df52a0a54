"""The TEST stack, synthesized and created in moto's CloudFormation over HTTP.

moto ignores Kinesis stream encryption, alarms, architectures and log
retention: those are asserted on the template instead (the other infra tests).
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from devtools.servers import aws_environment, reset_moto
from grid_reingest import names, settings
from grid_reingest.adapters.dynamodb import schema
from infra import constants as c
from infra.config import SETTINGS_CLASSES
from tests.infra.deploy import Deployment, deploy_stage

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def aws(moto_endpoint: str) -> Iterator[str]:
    """A clean emulator for this module's one deployment (the tests only read it)."""
    reset_moto(moto_endpoint)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in aws_environment(moto_endpoint).items():
            patch.setenv(key, value)
        yield moto_endpoint
    reset_moto(moto_endpoint)


@pytest.fixture(scope="module")
def deployment(aws: str, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """TEST deployed once, with a smaller batch to see overrides applied."""
    return deploy_stage(
        aws,
        "TEST",
        {"gridConcurrency": 4},
        outdir=tmp_path_factory.mktemp("cdk.out-deployed"),
    )


def test_deploy_stack_reaches_create_complete_with_its_outputs(deployment, aws):
    cloudformation = boto3.client("cloudformation", endpoint_url=aws)

    (stack,) = cloudformation.describe_stacks(StackName="grid-reingest-TEST")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert deployment.outputs == {
        names.STATE_TABLE_OUTPUT: "grid-reingest-TEST",
        names.DASHBOARD_OUTPUT: "grid-reingest-TEST",
        **{key: c.resource_name(s, "TEST") for s, key in names.FUNCTION_OUTPUTS.items()},
        **{key: c.resource_name(s, "TEST") for s, key in names.RULE_OUTPUTS.items()},
    }


def test_deploy_table_has_the_state_index(deployment, aws):
    table = boto3.client("dynamodb", endpoint_url=aws).describe_table(
        TableName=deployment.table_name
    )["Table"]

    assert table["KeySchema"] == [{"AttributeName": schema.ID, "KeyType": "HASH"}]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == schema.INDEX_NAME
    assert index["KeySchema"] == [
        {"AttributeName": schema.STATE_SHARD, "KeyType": "HASH"},
        {"AttributeName": schema.CHANGED_AT, "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}


@pytest.mark.parametrize("service", sorted(SETTINGS_CLASSES))
def test_deploy_function_environment_is_usable_as_is(deployment, service):
    # Given the environment the emulator holds for the deployed function
    env = deployment.environments[service]

    # Then the worker's settings load from it, pointing at what was deployed
    loaded = settings.load(SETTINGS_CLASSES[service], env)
    assert loaded.stage == "TEST"
    if service != names.IMAGE_PROJECTION:
        assert loaded.table_name == deployment.table_name
    if service in names.RULE_OUTPUTS:
        assert loaded.schedule_rule == deployment.rule_name(service)


def test_deploy_state_counts_reads_the_tables_stream_from_its_start(deployment, aws):
    # Given the deployed table and its stream
    client = boto3.client("lambda", endpoint_url=aws)
    table = boto3.client("dynamodb", endpoint_url=aws).describe_table(
        TableName=deployment.table_name
    )["Table"]
    # Then state-counts is mapped to it, from the oldest record, one batch per shard at a time
    (mapping,) = client.list_event_source_mappings(
        FunctionName=deployment.function_name(names.STATE_COUNTS)
    )["EventSourceMappings"]
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert mapping["EventSourceArn"] == table["LatestStreamArn"]
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["BatchSize"] == c.STATE_COUNTS_BATCH_SIZE


def test_deploy_batch_index_points_at_the_stream_and_projection(deployment):
    env = deployment.environments[names.BATCH_INDEX]

    assert env[settings.THRALL_STREAM_NAME.name] == deployment.stream_arn
    assert env[settings.PROJECTION_FUNCTION_NAME.name] == deployment.function_name(
        names.IMAGE_PROJECTION
    )
    assert env[settings.MAX_IN_FLIGHT.name] == "4"  # the override, not cdk.json's 8


@pytest.mark.parametrize("service", [names.BATCH_INDEX, names.BATCH_CHECK])
def test_deploy_rules_exist_disabled_targeting_their_worker(deployment, aws, service):
    events = boto3.client("events", endpoint_url=aws)
    name = deployment.rule_name(service)

    rule = events.describe_rule(Name=name)
    (target,) = events.list_targets_by_rule(Rule=name)["Targets"]
    assert rule["State"] == "DISABLED"
    assert rule["ScheduleExpression"] == "rate(1 minute)"  # a keep-alive
    assert target["Arn"].endswith(f":function:{deployment.function_name(service)}")


def test_deploy_functions_have_their_code_and_limits(deployment, aws):
    client = boto3.client("lambda", endpoint_url=aws)

    for service in SETTINGS_CLASSES:
        config = client.get_function_configuration(FunctionName=deployment.function_name(service))
        assert config["Runtime"] == "python3.13"
        assert config["Handler"] == c.HANDLERS[service]
        assert config["CodeSize"] > 0
    reserved = {
        service: client.get_function_concurrency(FunctionName=deployment.function_name(service))[
            "ReservedConcurrentExecutions"
        ]
        for service in (names.BATCH_INDEX, names.IMAGE_PROJECTION)
    }
    assert reserved == {names.BATCH_INDEX: 1, names.IMAGE_PROJECTION: 10}


def test_deploy_alarm_topic_is_created(deployment, aws):
    # moto creates the topic but ignores its subscription and policy: those are
    # asserted on the template (test_monitoring.py).
    sns = boto3.client("sns", endpoint_url=aws)

    arns = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    assert [a for a in arns if a.endswith(":grid-reingest-alarms-TEST")]


def test_deploy_api_key_parameter_is_there_for_the_workers(deployment, aws):
    ssm = boto3.client("ssm", endpoint_url=aws)

    parameter = ssm.get_parameter(Name=deployment.api_key_parameter, WithDecryption=True)
    assert parameter["Parameter"]["Type"] == "SecureString"
    assert parameter["Parameter"]["Value"] == "test-api-key"
