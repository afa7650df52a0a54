"""End to end: the TEST stack deployed into the emulator, then a whole pass run by its handlers.

Each handler runs in this process with the environment of its *deployed*
function (moto deploys Lambdas but cannot run them without Docker); batch-index's
invokes of image-projection are served by the image-projection handler, with
its own deployed environment. The operator drives it with the real commands,
finding everything from the stack's outputs by --stage.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import boto3
import pytest
from botocore.response import StreamingBody

from devtools.grid_server import GridSim
from devtools.local_lambda import FakeContext, environment, invoke
from devtools.servers import aws_environment, reset_moto
from devtools.thrall_consumer import read_stream
from devtools.thrall_metrics import report_iterator_age
from grid_reingest import names
from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.handlers import batch_check, batch_index, image_projection
from grid_reingest.settings import SERVICES, stream_name
from grid_reingest_cli.main import main as reingest
from tests.infra.deploy import Deployment, deploy_stage

pytestmark = pytest.mark.slow

IMAGES = 200
MAX_INVOCATIONS = 20


class ProjectionLambda:
    """A Lambda client whose invoke runs the image-projection handler here, as deployed."""

    def __init__(self, env: dict[str, str], function_name: str) -> None:
        self.function_name = function_name
        # A warm container: settings, key and Grid client built once, under its environment.
        with environment(env):
            image_projection._runtime = None
            image_projection.runtime()
        self.invoked = 0

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict:
        assert FunctionName == self.function_name
        assert InvocationType == "RequestResponse"
        self.invoked += 1
        answer = image_projection.handler(json.loads(Payload), FakeContext(FunctionName))
        body = json.dumps(answer).encode()
        return {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}


@pytest.fixture(scope="module")
def grid() -> Iterator[GridSim]:
    with GridSim() as sim:
        yield sim


@pytest.fixture(scope="module")
def deployed(moto_endpoint: str, grid: GridSim, tmp_path_factory) -> Iterator[Deployment]:
    reset_moto(moto_endpoint)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in aws_environment(moto_endpoint).items():
            patch.setenv(key, value)
        yield deploy_stage(
            moto_endpoint,
            "TEST",
            {
                "gridServiceUrls": {s: grid.base_url(s) for s in SERVICES},
                "gridConcurrency": 8,
                "batchCheck": {"maxInFlight": 8},
                # The emulator's thrall indexes at once: no need to wait for it.
                "settings": {"CHECK_MIN_AGE_SECONDS": 0},
            },
            api_key=grid.api_key,
            outdir=tmp_path_factory.mktemp("cdk.out-full-pass"),
        )
    reset_moto(moto_endpoint)


def thrall_is_keeping_up(endpoint: str, stream_arn: str) -> None:
    cloudwatch = boto3.client("cloudwatch", endpoint_url=endpoint)
    report_iterator_age(cloudwatch, stream_name(stream_arn), 250.0)


def run_until_rule_off(module, env, rule, events, most: int = MAX_INVOCATIONS) -> int:
    """Invoke a worker's handler as its schedule would until it switches its rule off; how many
    invocations that took."""
    for n in range(1, most + 1):
        try:
            invoke(module, env, {"source": "aws.events"}, FakeContext(rule), fresh=n == 1)
        except (
            Exception
        ) as error:  # a failed invocation: Lambda counts an error, the next tick comes
            print(f"invocation {n} failed: {type(error).__name__}: {error}")
        if events.describe_rule(Name=rule)["State"] == "DISABLED":
            return n
    raise AssertionError(f"{rule} still enabled after {most} invocations")


def test_a_full_pass_of_200_images_from_0_to_6_on_the_deployed_stack(
    deployed, grid, moto_endpoint, tmp_path, monkeypatch, capsys
):
    for key, value in aws_environment(moto_endpoint).items():
        monkeypatch.setenv(key, value)
    events = boto3.client("events", endpoint_url=moto_endpoint)
    kinesis = boto3.client("kinesis", endpoint_url=moto_endpoint)
    thrall_is_keeping_up(moto_endpoint, deployed.stream_arn)
    grid.index_all = False  # media-api has an image once thrall indexed it

    # Given 200 ids uploaded by the operator, who knows only the stage
    ids = [f"{i:040x}" for i in range(1, IMAGES + 1)]
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    assert reingest(["upload-ids", "--stage", "TEST", str(tmp_path / "ids.txt")]) == 0
    # The schedules were deployed off
    for service in (names.BATCH_INDEX, names.BATCH_CHECK):
        assert events.describe_rule(Name=deployed.rule_name(service))["State"] == "DISABLED"

    # When the operator starts batch-index, which runs until it switches itself off
    assert reingest(["start", "--stage", "TEST", "--worker", "index"]) == 0
    projection = ProjectionLambda(
        deployed.environments[names.IMAGE_PROJECTION],
        deployed.function_name(names.IMAGE_PROJECTION),
    )
    real_make_client = batch_index.make_client
    monkeypatch.setattr(
        batch_index,
        "make_client",
        lambda service, **kw: (
            projection if service == "lambda" else real_make_client(service, **kw)
        ),
    )
    index_runs = run_until_rule_off(
        batch_index,
        deployed.environments[names.BATCH_INDEX],
        deployed.rule_name(names.BATCH_INDEX),
        events,
    )

    # thrall indexes what arrived
    messages = read_stream(kinesis, stream_name(deployed.stream_arn))
    grid.indexed.update(message["image"]["id"] for _, message in messages)

    # and then batch-check, likewise
    assert reingest(["start", "--stage", "TEST", "--worker", "check"]) == 0
    check_runs = run_until_rule_off(
        batch_check,
        deployed.environments[names.BATCH_CHECK],
        deployed.rule_name(names.BATCH_CHECK),
        events,
    )

    # Then every image went from 0 to 6, each published once, the rules off
    table = OperatorTable(deployed.table_name, boto3.client("dynamodb", endpoint_url=moto_endpoint))
    assert table.counts([S.VERIFIED])[S.VERIFIED] == IMAGES
    assert sum(table.counts().values()) == IMAGES
    assert sorted(key for key, _ in messages) == ids
    assert projection.invoked == IMAGES
    # Continuous workers: one invocation each does the whole pass and finds the end
    assert index_runs == 1
    assert check_runs == 1
    capsys.readouterr()
    assert reingest(["watch", "--stage", "TEST", "--once"]) == 0
    watched = capsys.readouterr().out
    assert "batch-index  done (rule off)" in watched
    assert "batch-check  done (rule off)" in watched
    assert "100.0%" in watched
