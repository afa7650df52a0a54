"""One continuous batch-index invocation against the ideal and against the Grid's original design.

Setup: Kinesis on moto's server behind a 10 ms round-trip proxy; DynamoDB on the
latency model (benchmarks/dynamodb_model.py), then on moto behind the same proxy; and
the simulated Grid answering a projection in 200 ms, each in a process of its
own (as they would be remote) so that only the worker runs in this one. Deployed, batch-index
invokes one image-projection Lambda per image, so the benchmark's projector
does what an invoke costs: one 200 ms round trip (image-loader's projection)
and the record's encoding — not seven more HTTP calls from this process.

- ours: `run_batch_index` (continuous: it works until nothing is left) over
  200 images, a pace holding 32 in flight;
- seed: the Grid's design — a fixed pool of 5 threads projecting, one
  PutRecord per image — over the same state-table code;
- ideal: concurrency ÷ latency images/s.

Also counted: Kinesis calls per 100 images, and DynamoDB writes per image for
the whole path from state 0 to 6 (batch-index then batch-check).

    python -m benchmarks.workers
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

import boto3

from benchmarks.processes import proxy_process, sim_process
from benchmarks.report import machine, table, write_section
from benchmarks.state_table import latency_model
from devtools.servers import aws_environment, moto_server
from grid_reingest.adapters.aws import client_config
from grid_reingest.adapters.dynamodb.schema import create_table
from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest.adapters.grid import GridClient
from grid_reingest.adapters.kinesis import Publisher
from grid_reingest.domain.claims import Source, Transition
from grid_reingest.domain.isotime import utc_now
from grid_reingest.domain.merge import ServiceData, merge
from grid_reingest.domain.outcome import NotFound, Outcome, Ready
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.domain.thrall_message import encode_message, record_size
from grid_reingest.flows.batch_check import CheckDeps, run_batch_check
from grid_reingest.flows.batch_index import IndexDeps, run_batch_index
from grid_reingest.handlers.common import SystemClock
from grid_reingest.ports import Observation, PaceDecision, Presence
from grid_reingest.settings import BatchCheckSettings, BatchIndexSettings, load

LATENCY_S = 0.010
PROJECTION_S = 0.200
BATCH = 200
CONCURRENCY = 32
SEED_THREADS = 5
# This machine is shared: our invocation runs a few times and the median counts.
OUR_REPEATS = 3
STREAM = "thrall-bench"
# Items written by one call of each DynamoDB write operation.
ITEMS_WRITTEN = {
    "UpdateItem": lambda params: 1,
    "PutItem": lambda params: 1,
    "DeleteItem": lambda params: 1,
    "BatchWriteItem": lambda params: sum(map(len, params["RequestItems"].values())),
    "TransactWriteItems": lambda params: len(params["TransactItems"]),
}
WRITES = "items written"


class InvokeLikeProjector:
    """What invoking image-projection costs batch-index: one 200 ms round trip per image.

    Deployed, the merge and the record's encoding run in the image-projection
    Lambda's own process; batch-index only reads the answer. So the records
    are encoded before the clock starts (`prepare`), and `project` makes the
    round trip (whose JSON answer, the image, is about the size of the invoke's
    answer) and hands the prepared record back.
    """

    def __init__(self, grid: GridClient) -> None:
        self.grid = grid
        self.records: dict[str, bytes] = {}
        self.spans: list[tuple[float, float]] = []  # (start, end) of each projection

    def prepare(self, sim, ids: list[str]) -> None:
        for image_id in ids:
            image = merge(sim.image(image_id), ServiceData())
            self.records[image_id] = encode_message(image, utc_now())

    def project(self, image_id: str) -> Outcome:
        started = time.perf_counter()
        response = self.grid.projection(image_id)
        self.spans.append((started, time.perf_counter()))
        if response.status == 404:
            return NotFound(image_id)
        record = self.records[image_id]
        return Ready(image_id, record, record_size(image_id, record))


class FixedPace:
    """A pace holding the concurrency: the worker's machinery is measured, not the controller."""

    def decide(self, observation: Observation) -> PaceDecision:
        return PaceDecision(CONCURRENCY, None, "benchmark")

    def leave(self, holding: int = 0) -> None:
        """Nothing shared."""

    def take_unread(self) -> dict[str, int]:
        return {}


def ours(settings, state_table, projector, kinesis) -> tuple[float, object, dict]:
    """One invocation: seconds, its summary, and when projections started and ended (ms)."""
    deps = IndexDeps(
        store=state_table,
        projector=projector,
        publisher=Publisher(kinesis, STREAM),
        pace=FixedPace(),
        clock=SystemClock(),
        remaining_ms=lambda: 900_000,
        invocation="ours",
        rule=None,
    )
    projector.spans.clear()
    started = time.perf_counter()
    summary = run_batch_index(settings, deps)
    ended = time.perf_counter()
    starts = sorted(start for start, _ in projector.spans)
    timing = {
        "first_start_ms": round((starts[0] - started) * 1000),
        "wave_started_ms": round((starts[min(CONCURRENCY, len(starts)) - 1] - started) * 1000),
        "tail_ms": round((ended - max(end for _, end in projector.spans)) * 1000),
    }
    return ended - started, summary, timing


def seed(state_table, projector, kinesis) -> float:
    """The Grid's batch index: 5 projecting threads, then one PutRecord per image."""
    started = time.perf_counter()
    claims = state_table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, BATCH, "seed")
    with ThreadPoolExecutor(SEED_THREADS) as pool:
        outcomes = list(pool.map(projector.project, [c.id for c in claims]))
    for outcome in outcomes:
        if isinstance(outcome, Ready):
            kinesis.put_record(
                StreamName=STREAM, Data=outcome.record, PartitionKey=outcome.image_id
            )
    state_table.apply(
        Transition(o.image_id, S.IN_PROGRESS, S.ENQUEUED, invocation="seed") for o in outcomes
    )
    return time.perf_counter() - started


def measure(dynamodb_url: str, kinesis_url: str, sim, label: str) -> dict:
    """Seed vs ours for one batch, then batch-check to state 6; what was measured."""
    dynamodb = boto3.client("dynamodb", endpoint_url=dynamodb_url, config=client_config(64))
    kinesis = boto3.client("kinesis", endpoint_url=kinesis_url, config=client_config(8))
    grid = GridClient(sim.settings(GRID_CONCURRENCY=str(CONCURRENCY)), sim.api_key)
    projector = InvokeLikeProjector(grid)
    ids = [f"{i + 1:040x}" for i in range(BATCH)]
    projector.prepare(sim, ids)
    for image_id in ids[:3]:  # warm the connection pools up
        projector.project(image_id)
    settings = load(
        BatchIndexSettings,
        {
            "STATE_TABLE_NAME": "ours",
            "THRALL_STREAM_NAME": STREAM,
            "PROJECTION_FUNCTION_NAME": "benchmark",
            "MAX_IN_FLIGHT": str(CONCURRENCY),
            "PROJECTION_TIMEOUT_SECONDS": "30",
            "STOP_MARGIN_SECONDS": "60",
        },
    )
    for name in ("ours", "seed"):
        with contextlib.suppress(dynamodb.exceptions.ResourceInUseException):
            create_table(dynamodb, name)
        OperatorTable(name, dynamodb).put_new(ids)
    ours_table = OperatorTable("ours", dynamodb, max_workers=CONCURRENCY)
    seed_s = seed(OperatorTable("seed", dynamodb, max_workers=CONCURRENCY), projector, kinesis)
    counter = Counter()
    counter.install(dynamodb, kinesis)
    runs = []
    for run in range(OUR_REPEATS):
        if run:  # the same batch again, from state 0
            ours_table.put_new(ids)
        counter.take()
        runs.append((*ours(settings, ours_table, projector, kinesis), counter.take()))
    # The median run by time; batch-check then verifies the images it enqueued.
    ours_s, _summary, timing, index_calls = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    times = [round(r[0], 2) for r in runs]
    check_settings = load(
        BatchCheckSettings,
        {
            "STATE_TABLE_NAME": "ours",
            "CHECK_MIN_AGE_SECONDS": "0",
            "CHECK_MAX_IN_FLIGHT": str(CONCURRENCY),
            **sim.env(GRID_CONCURRENCY=str(CONCURRENCY)),
        },
    )

    def lookup(image_id: str) -> Presence:
        response = grid.image(image_id)
        return Presence(response.status, response.message)

    run_batch_check(
        check_settings,
        CheckDeps(
            store=ours_table,
            lookup=lookup,
            pace=FixedPace(),
            clock=SystemClock(),
            remaining_ms=lambda: 900_000,
            invocation="check",
            rule=None,
        ),
    )
    check_calls = counter.take()
    verified = ours_table.count(S.VERIFIED)
    writes = index_calls[WRITES] + check_calls[WRITES]
    result = {
        "label": label,
        "seed_s": seed_s,
        "ours_s": ours_s,
        "ours_runs": times,
        **timing,
        "kinesis_per_100": index_calls["PutRecords"] / BATCH * 100,
        "writes_per_image": writes / max(verified, 1),
        "verified": verified,
    }
    print(result, flush=True)
    return result


class Counter(collections.Counter):
    """Counts the AWS calls two clients make, by operation name, and the DynamoDB items
    they write (under WRITES), through a botocore event hook."""

    def install(self, *clients) -> None:
        for client in clients:
            client.meta.events.register("before-parameter-build.*.*", self._count)

    def _count(self, model, params, **kwargs) -> None:
        self[model.name] += 1
        if model.name in ITEMS_WRITTEN:
            self[WRITES] += ITEMS_WRITTEN[model.name](params)

    def take(self) -> collections.Counter:
        taken = collections.Counter(self)
        self.clear()
        return taken


def main(argv: list[str] | None = None) -> None:
    """Measure and write the section of docs/benchmarks.md."""
    os.environ.update(aws_environment())  # dummy credentials: nothing reaches AWS
    results = []
    with (
        moto_server() as moto,
        proxy_process(moto, LATENCY_S) as proxy,
        sim_process(latency={"image-loader": PROJECTION_S}) as (sim, _),
    ):
        os.environ.update(aws_environment(moto))
        kinesis = boto3.client("kinesis", endpoint_url=moto)
        kinesis.create_stream(StreamName=STREAM, ShardCount=4)
        kinesis.get_waiter("stream_exists").wait(StreamName=STREAM)
        with latency_model() as model:
            results.append(measure(model, proxy, sim, "DynamoDB latency model"))
        results.append(measure(proxy, proxy, sim, "DynamoDB on moto"))

    ideal = CONCURRENCY / PROJECTION_S
    rows = []
    for r in results:
        rows.append(
            [
                r["label"],
                "seed design (5 threads, PutRecord each)",
                f"{r['seed_s']:.2f}",
                f"{BATCH / r['seed_s']:.1f}",
                f"{BATCH / r['seed_s'] / ideal:.2f}",
                "1.0×",
            ]
        )
        rows.append(
            [
                r["label"],
                f"ours, concurrency {CONCURRENCY}, whole invocation",
                f"{r['ours_s']:.2f}",
                f"{BATCH / r['ours_s']:.1f}",
                f"**{BATCH / r['ours_s'] / ideal:.2f}**",
                f"**{r['seed_s'] / r['ours_s']:.1f}×**",
            ]
        )
    model, moto_run = results
    body = f"""\
Measured {machine()}. One invocation of batch-index over a batch of {BATCH}
images; the simulated Grid answers a projection in {PROJECTION_S * 1000:.0f} ms; every
DynamoDB and Kinesis call pays a 10 ms round trip. The projector makes one
200 ms call per image and hands back a record encoded before the clock
started: deployed, the merge and the encoding run in image-projection's own
process, and batch-index only reads the answer. The ideal is
concurrency ÷ latency = {ideal:.0f} images/s. Kinesis is moto behind the
10 ms proxy; DynamoDB is either the latency model
(`benchmarks/dynamodb_model.py`: answers after the 10 ms, whatever the number
of calls in flight, as DynamoDB does) or moto behind the same proxy.

{table(["DynamoDB", "design", "seconds", "images/s", "÷ ideal", "vs seed"], rows)}

- Target ≥ 0.8 of the ideal: **{BATCH / model["ours_s"] / ideal:.2f}** on the
  latency model, {"met" if BATCH / model["ours_s"] / ideal >= 0.8 else "not met"}
  (median of {OUR_REPEATS} runs: {", ".join(f"{t:.2f}" for t in model["ours_runs"])} s).
  With concurrency {CONCURRENCY}, {BATCH} images
  take 7 rounds of 200 ms (1.4 s), so 0.89 is the most any design reaches
  here. The rest is the client's CPU: each DynamoDB call costs botocore about
  1.5 ms of one core (serialising, signing, parsing), and a batch makes ~430
  of them (16-shard queries, {BATCH} conditional claims, {BATCH} outcomes). In the
  median run the first image started {model["first_start_ms"]} ms in, the
  first {CONCURRENCY} had all started by {model["wave_started_ms"]} ms, and the
  invocation ended {model["tail_ms"]} ms after the last projection (the last
  outcomes being written). The worker is continuous: it claims a window of
  images (as many as may be in flight) in one call, starts each as a slot
  frees, and publishes ready records once 100 wait or the oldest has waited
  a second; claiming, publishing and recording run on the loop's own thread
  between starts, which is what separates it from the ideal here; deployed,
  where a projection takes seconds, not 200 ms, the same overhead is a few
  percent. TransactWriteItems would carry up to 100
  conditional writes a call, but moto's is neither atomic under concurrent
  calls nor cheap (it copies the table each time), so the claims' races could
  not be tested against it; claims and outcomes stay one UpdateItem each.
- On moto, each conditional write also costs moto ~10 ms of CPU in one
  process ({BATCH / moto_run["ours_s"] / ideal:.2f} of the ideal): that is the
  emulator.
- Target ≥ 5× the seed's design at concurrency 32:
  **{model["seed_s"] / model["ours_s"]:.1f}×** (latency model),
  {moto_run["seed_s"] / moto_run["ours_s"]:.1f}× on moto.
- Kinesis calls per 100 images: **{model["kinesis_per_100"]:.1f}** (target ≤ 1):
  ready records go out in PutRecords calls of up to 500 records / 5 MiB.
- DynamoDB writes per image from state 0 to 6: **{model["writes_per_image"]:.1f}**
  (target ≤ 5): a conditional claim and a conditional outcome in each of
  batch-index and batch-check; {model["verified"]} of {BATCH} images verified.

Re-run: `python -m benchmarks.workers` (about a minute).
"""
    write_section("Workers: one batch-index invocation", body)
    for r in results:
        print(
            f"{r['label']}: ours {BATCH / r['ours_s']:.1f} images/s, "
            f"seed {BATCH / r['seed_s']:.1f} images/s, ideal {ideal:.0f} images/s"
        )


if __name__ == "__main__":
    main()
