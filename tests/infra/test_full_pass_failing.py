"""End to end on the deployed stack: a pass in which some images fail on their own every time.

As tests/infra/test_full_pass.py (the TEST stage deployed into the emulator, its handlers
run here with their deployed environments), with the usage service answering 503 to one
image in thirty on every call — a long history timing out. At the end of the pass they are
all that is left, and they must still end (at 8), so that batch-index switches its own rule
off. Run with thrall's lease table there, and again with `thrallCheckpointTable` naming a
table that does not exist: the pass must not care (there with one attempt an image, which
ends the same way in a third of the invocations).
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from devtools.grid_server import GridSim
from devtools.servers import aws_environment, reset_moto
from devtools.thrall_consumer import read_stream
from grid_reingest import names
from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.handlers import batch_check, batch_index
from grid_reingest.settings import SERVICES, stream_name
from grid_reingest_cli.main import main as reingest
from tests.infra.deploy import Deployment, deploy_stage
from tests.infra.test_full_pass import ProjectionLambda, run_until_rule_off, thrall_is_keeping_up

pytestmark = pytest.mark.slow

IMAGES = 60
FAILING_EVERY = 30
# 3 attempts, each after 3 of an image's own overload answers, and the first invocation.
MAX_INVOCATIONS = 15


@pytest.fixture(scope="module")
def grid() -> Iterator[GridSim]:
    with GridSim() as sim:
        yield sim


# Each variant's MAX_ATTEMPTS.
ATTEMPTS = {"lease table": 3, "no lease table": 1}


@pytest.fixture(scope="module", params=list(ATTEMPTS))
def deployed(request, moto_endpoint: str, grid: GridSim, tmp_path_factory) -> Iterator[Deployment]:
    reset_moto(moto_endpoint)
    overrides = {
        "gridServiceUrls": {s: grid.base_url(s) for s in SERVICES},
        "gridConcurrency": 8,
        "batchCheck": {"maxInFlight": 8},
        # A failing call ends within a second: urllib3's retries stop at the call's deadline.
        "settings": {
            "CHECK_MIN_AGE_SECONDS": 0,
            "GRID_SERVICE_TIMEOUT_SECONDS": 1,
            "MAX_ATTEMPTS": ATTEMPTS[request.param],
        },
    }
    if request.param == "no lease table":
        overrides["thrallCheckpointTable"] = "media-service-TEST-NoSuchLeaseTable"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in aws_environment(moto_endpoint).items():
            patch.setenv(key, value)
        yield deploy_stage(
            moto_endpoint,
            "TEST",
            overrides,
            api_key=grid.api_key,
            outdir=tmp_path_factory.mktemp("cdk.out-failing-pass"),
        )
    reset_moto(moto_endpoint)


def test_a_pass_with_images_failing_alone_ends_with_them_at_8(
    deployed, grid, moto_endpoint, tmp_path, monkeypatch
):
    for key, value in aws_environment(moto_endpoint).items():
        monkeypatch.setenv(key, value)
    events = boto3.client("events", endpoint_url=moto_endpoint)
    kinesis = boto3.client("kinesis", endpoint_url=moto_endpoint)
    thrall_is_keeping_up(moto_endpoint, deployed.stream_arn)
    grid.index_all = False
    # Given ids of which one in thirty the usage service answers 503, every time
    ids = [f"{i:040x}" for i in range(1, IMAGES + 1)]
    failing = ids[FAILING_EVERY - 1 :: FAILING_EVERY]
    for image_id in failing:
        grid.fail(image_id, "usages", 503)
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    assert reingest(["upload-ids", "--stage", "TEST", str(tmp_path / "ids.txt")]) == 0

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
        MAX_INVOCATIONS,
    )
    messages = read_stream(kinesis, stream_name(deployed.stream_arn))
    grid.indexed.update(message["image"]["id"] for _, message in messages)
    assert reingest(["start", "--stage", "TEST", "--worker", "check"]) == 0
    run_until_rule_off(
        batch_check,
        deployed.environments[names.BATCH_CHECK],
        deployed.rule_name(names.BATCH_CHECK),
        events,
        MAX_INVOCATIONS,
    )

    # Then the pass ended: the failing images at 8 after their attempts, the rest at 6
    table = OperatorTable(deployed.table_name, boto3.client("dynamodb", endpoint_url=moto_endpoint))
    counts = table.counts()
    assert counts[S.UNKNOWN_ERROR] == len(failing)
    assert counts[S.VERIFIED] == IMAGES - len(failing)
    attempts = int(deployed.environments[names.BATCH_INDEX]["MAX_ATTEMPTS"])
    assert {table.get(i)["attempts"] for i in failing} == {attempts}
    assert "usage: HTTP 503" in table.get(failing[0])["last_error"]
    assert index_runs <= MAX_INVOCATIONS
