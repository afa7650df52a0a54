"""upload-ids and scan-statuses against the Grid's original algorithms, side by side.

Two backends, both with a 10 ms round trip per request:
- the latency model (benchmarks/dynamodb_model.py): answers from memory in its
  own process, so the client's design (and its CPU per call, spent for real in
  this process) is what is measured;
- moto's server behind the latency proxy: shows where the emulator itself
  becomes the limit (one CPU-bound process).

Uploads are measured for a file of new ids and for the same file again (every
id already there), for our design and for the two it was chosen against.

    python -m benchmarks.state_table [--only upload|scan] [--upload-ids 50000]
                                     [--moto-ids 20000] [--ids 200000] [--rss-rows 1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import requests

from benchmarks.report import machine, table, write_section
from devtools.aws_proxy import AwsProxy
from devtools.servers import aws_environment, free_port, moto_server, server_process
from grid_reingest.adapters.aws import client_config
from grid_reingest.adapters.dynamodb.plain_items import PLAIN_ITEMS_HOOK
from grid_reingest.adapters.dynamodb.schema import SCAN_PAGE_ITEMS, create_table, fresh_item
from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest.domain.states import ProgressState

LATENCY_S = 0.010
# Scans are short and this machine is shared: each ratio is the median of a few.
SCAN_REPEATS = 3
# Store time to read one 1 MB Scan page, besides the round trip: a sweep, since
# the real figure depends on the table and the network to the operator.
SCAN_PAGE_MS = (25, 50, 100)
TABLE = "bench"
ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def latency_model(
    throttle: float = 0.0, partial: float = 0.0, scan_page_ms: float = 0.0
) -> Iterator[str]:
    """The DynamoDB latency model in its own process; yields its endpoint."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "benchmarks.dynamodb_model",
        "--port",
        str(port),
        "--latency-ms",
        str(LATENCY_S * 1000),
        "--throttle",
        str(throttle),
        "--partial",
        str(partial),
        "--scan-page-ms",
        str(scan_page_ms),
    ]
    with server_process(argv, port, "/_count", cwd=ROOT) as url:
        yield url


def client(endpoint: str, pool: int = 32):
    return boto3.client("dynamodb", endpoint_url=endpoint, config=client_config(pool))


def ids(n: int) -> list[str]:
    return [f"{i:040x}" for i in range(n)]


def seed_upload(dynamodb, names: list[str], table_name: str = TABLE) -> None:
    """The Grid's upload script: one 25-item BatchWriteItem at a time, UnprocessedItems ignored."""
    for start in range(0, len(names), 25):
        dynamodb.batch_write_item(
            RequestItems={
                table_name: [
                    {"PutRequest": {"Item": fresh_item(i, ProgressState.NOT_STARTED, "-")}}
                    for i in names[start : start + 25]
                ]
            }
        )


def our_upload(dynamodb, names: list[str], table_name: str = TABLE) -> None:
    """upload-ids: batches of 100, new ids as PartiQL INSERTs 25 a call, 16 threads."""
    with OperatorTable(table_name, dynamodb, max_workers=16) as state_table:
        state_table.put_new(names)


def _absent(dynamodb, table_name: str, names: list[str]) -> list[str]:
    """The ids of `names` not in the table (one strongly consistent BatchGetItem)."""
    found = dynamodb.batch_get_item(
        RequestItems={
            table_name: {
                "Keys": [{"id": {"S": i}} for i in names],
                "ProjectionExpression": "id",
                "ConsistentRead": True,
            }
        }
    )["Responses"][table_name]
    there = {item["id"]["S"] for item in found}
    return [i for i in names if i not in there]


def _in_batches(upload_batch, names: list[str]) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(upload_batch, [names[i : i + 100] for i in range(0, len(names), 100)]))


def conditional_put_upload(dynamodb, names: list[str], table_name: str) -> None:
    """The design before: a read of 100 ids, then a conditional PutItem per new id, 16 threads."""

    def upload_batch(batch: list[str]) -> None:
        for image_id in _absent(dynamodb, table_name, batch):
            with contextlib.suppress(dynamodb.exceptions.ConditionalCheckFailedException):
                dynamodb.put_item(
                    TableName=table_name,
                    Item=fresh_item(image_id, ProgressState.NOT_STARTED, "-"),
                    ConditionExpression="attribute_not_exists(id)",
                )

    _in_batches(upload_batch, names)


def locked_upload(dynamodb, names: list[str], table_name: str) -> None:
    """What an upload serialised by a lock would send: a read of 100 ids, then unconditional
    25-item BatchWriteItems of the absent ones, 16 threads (the lock's own calls left out)."""

    def upload_batch(batch: list[str]) -> None:
        new = _absent(dynamodb, table_name, batch)
        for start in range(0, len(new), 25):
            seed_upload(dynamodb, new[start : start + 25], table_name)

    _in_batches(upload_batch, names)


# name in the table, function, table it writes (each design its own, so each sees new ids)
UPLOADS = (
    ("**ours**: PartiQL INSERT, 25 a call", our_upload, TABLE),
    ("lock + read + BatchWriteItem", locked_upload, f"{TABLE}-locked"),
    ("conditional PutItem per id (before)", conditional_put_upload, f"{TABLE}-put"),
)
SEED_TABLE = f"{TABLE}-seed"
UPLOAD_COLUMNS = [
    "backend",
    "file",
    "design",
    "ids",
    "seed ids/s",
    "design ids/s",
    "ratio",
    "client CPU µs/id (seed)",
]


def seed_scan(dynamodb, out: Path) -> int:
    """The Grid's scan script: one sequential Scan, `id state` lines."""
    rows = 0
    kwargs = {"TableName": TABLE, "ProjectionExpression": "id, progress_state"}
    with out.open("w") as handle:
        while True:
            page = dynamodb.scan(**kwargs)
            handle.writelines(f"{i['id']['S']} {i['progress_state']['N']}\n" for i in page["Items"])
            rows += len(page["Items"])
            if "LastEvaluatedKey" not in page:
                return rows
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def our_scan(dynamodb, out: Path, segments: int = 8) -> int:
    rows = 0
    with out.open("w") as handle, OperatorTable(TABLE, dynamodb) as state_table:
        for page in state_table.scan(segments=segments):
            handle.write("".join(f"{i} {s}\n" for i, s in page))
            rows += len(page)
    return rows


def botocore_parsed(dynamodb):
    """The same client reading every Scan page through botocore's own parser.

    botocore keeps the first handler registered under a unique id, so a no-op
    in read_plain_items's place switches the state table's fast path off.
    """
    dynamodb.meta.events.register(
        "before-parse.dynamodb.Scan", lambda **kwargs: None, unique_id=PLAIN_ITEMS_HOOK
    )
    return dynamodb


def scan_ratio(endpoint: str, workdir: Path, n: int, label: str, ours=client) -> list:
    """Seed vs our scan of the same table, interleaved, median of SCAN_REPEATS; one table row."""
    seq, par = [], []
    for _ in range(SCAN_REPEATS):
        seq_s, seq_rows = timed(seed_scan, client(endpoint), workdir / "seed.txt")
        par_s, par_rows = timed(our_scan, ours(endpoint), workdir / "ours.txt")
        assert seq_rows == par_rows == n, (seq_rows, par_rows, n)
        seq.append(seq_s)
        par.append(par_s)
    seq_s, par_s = statistics.median(seq), statistics.median(par)
    return [label, f"{n:,}", f"{n / seq_s:,.0f}", f"{n / par_s:,.0f}", f"**{seq_s / par_s:.1f}×**"]


def timed(fn, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def count(endpoint: str) -> int:
    return requests.get(f"{endpoint}/_count", timeout=30).json()["count"]


def upload_rows(
    endpoint: str, n: int, backend: str, figures: dict, *, with_cpu: bool
) -> list[list]:
    """The seed and each design on a file of `n` new ids, then on the same file again
    (every id there); one table row per design and file. Ids/s are wall-clock; CPU is this
    process's (the client's) time per id. `figures` gets (seed ids/s, ids/s, CPU s an id)
    by (backend, file, upload function)."""
    names = ids(n)
    rows = []
    for file in ("new ids", "all already there"):
        seed_s, seed_cpu = timed_cpu(seed_upload, client(endpoint), names, SEED_TABLE)
        for name, upload, table_name in UPLOADS:
            took, cpu = timed_cpu(upload, client(endpoint), names, table_name)
            figures[backend, file, upload] = (n / seed_s, n / took, cpu / n)
            rows.append(
                [
                    backend,
                    file,
                    name,
                    f"{n:,}",
                    f"{n / seed_s:,.0f}",
                    f"{n / took:,.0f}",
                    f"**{seed_s / took:.1f}×**" if "ours" in name else f"{seed_s / took:.1f}×",
                    f"{cpu / n * 1e6:.0f} ({seed_cpu / n * 1e6:.0f})" if with_cpu else "-",
                ]
            )
            print(rows[-1], flush=True)
    return rows


def timed_cpu(fn, *args) -> tuple[float, float]:
    """Wall-clock and this process's CPU seconds of one call."""
    cpu = time.process_time()
    took, _ = timed(fn, *args)
    return took, time.process_time() - cpu


def peak_rss_of_scan(endpoint: str, out: Path) -> tuple[float, float]:
    """Run `reingest scan-statuses` in a fresh process; its peak RSS (MB) and seconds."""
    # VmHWM, not getrusage: Linux carries the forking parent's peak into a
    # child's ru_maxrss across exec, and this benchmark's own process is large.
    probe = (
        "import sys\n"
        "from grid_reingest_cli.main import main\n"
        "code = main(sys.argv[1:])\n"
        "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(int(peak.split()[1]), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", probe, "scan-statuses", "--table", TABLE, "--force", str(out)],
        env={**os.environ, **aws_environment(endpoint)},
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    return int(result.stderr.strip().splitlines()[-1]) / 1024, seconds


def measure_uploads(args: argparse.Namespace) -> None:
    """Seed vs each upload design, in the model and through the proxy to moto; its section."""
    figures: dict = {}
    rows = []
    with latency_model() as endpoint:
        rows += upload_rows(endpoint, args.upload_ids, "latency model", figures, with_cpu=True)

    with latency_model(throttle=0.1, partial=0.1) as endpoint:
        names = ids(args.upload_ids)
        seed_upload(client(endpoint), names, SEED_TABLE)
        seed_stored = count(endpoint)
        fault_s, _ = timed(our_upload, client(endpoint), names)
        lost = len(names) - (count(endpoint) - seed_stored)
    print("faults: seed lost", len(names) - seed_stored, "ours lost", lost, flush=True)

    with moto_server() as moto, AwsProxy(moto, latency_s=LATENCY_S) as proxy:
        os.environ.update(aws_environment(moto))
        for table_name in (SEED_TABLE, *(t for _, _, t in UPLOADS)):
            create_table(client(moto), table_name)
        rows += upload_rows(proxy.url, args.moto_ids, "moto + 10 ms proxy", figures, with_cpu=False)

    _, model_rate, model_cpu = figures["latency model", "new ids", our_upload]
    moto_seed, moto_rate, _ = figures["moto + 10 ms proxy", "new ids", our_upload]
    body = f"""\
Measured {machine()}. Every request pays a 10 ms round trip. "Seed" is the
Grid's original algorithm: one 25-item BatchWriteItem at a time, each awaited,
UnprocessedItems ignored, every existing item overwritten. Each design writes
its own table: first a file of new ids, then the same file again (every id
already there). CPU is this process's time per id, the client's alone in the
model (the seed's in brackets); through the proxy it would include the proxy's
own, so it is left out.

{table(UPLOAD_COLUMNS, rows)}

Targets: at least 10,000 new ids a second in the model, at least 3× the seed
through the proxy. Measured: **{model_rate:,.0f} new ids/s** in the model, and
**{moto_rate / moto_seed:.1f}×** the seed through the proxy. At the model's
rate, 50M new ids take **{50e6 / model_rate / 3600:.1f} h**; at the client's
{model_cpu * 1e6:.0f} µs of CPU an id, the most one Python process can send is
~{1 / model_cpu:,.0f} ids/s (50M in {50e6 * model_cpu / 3600:.1f} h), whatever
the round trip, given enough calls in flight (`--workers`).

- **ours**: batches of 100 ids, 16 in flight; each batch's new ids go in as
  PartiQL `INSERT`s, 25 statements a BatchExecuteStatement. DynamoDB refuses
  an `INSERT` of a key that exists on its own (`DuplicateItem`), so no item is
  ever overwritten, whoever races the upload. A batch is read first
  (BatchGetItem) only while the batches before found ids already there: a
  new file costs four calls per 100 ids, a file already uploaded one read per
  100 ids and no write.
- **lock + read + BatchWriteItem**: what an upload serialised by a lock item
  would send (the lock's own calls left out). About as fast, but safe only
  while every writer that can create an item holds the lock, and an upload
  paused past its lease (a laptop asleep, Ctrl-Z) would overwrite blind
  (docs/state-table.md).
- **conditional PutItem per id**: the design this replaces. botocore spends
  about as much CPU on one call of one item as on one call of 25, so one call
  per id made the upload CPU-bound.
- **moto + 10 ms proxy**: moto is one CPU-bound process; once the client keeps
  it busy, the emulator is what is measured, so parallelism shows less. moto
  cannot run a parameterised `INSERT`; devtools/moto_partiql.py answers them
  as DynamoDB does (a key lookup and a put per statement). For a file already
  there, our read projects `progress_state` and `state_changed_at` as well as
  `id` (to report each id's state), which moto takes about twice as long to
  answer as `id` alone: that, not the design, is the gap to the other rows.
- **Faults**: {args.upload_ids:,} new ids uploaded while 10% of write calls are
  throttled and 10% of calls have part of their items or statements refused
  (UnprocessedItems, `ThrottlingError`): **{lost} ids lost** with ours
  ({len(names) / fault_s:,.0f} ids/s); the seed's algorithm (botocore's
  retries for throttled calls, UnprocessedItems ignored) lost
  {len(names) - seed_stored:,}. The same property is a test
  (`tests/integration/test_state_table_faults.py`).

Rows measured in one run on a shared machine: under load the ratios move from
run to run. Re-run: `python -m benchmarks.state_table --only upload` (a few
minutes).
"""
    write_section("State table: upload-ids", body)


def measure_scans(args: argparse.Namespace) -> None:
    """Seed vs ours for scans, in the model (with store time per page) and through the proxy
    to moto; peak memory of a big scan; its section."""
    results: list[list] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)

        with latency_model() as endpoint:
            seed_table(endpoint, args.ids)
            results.append(scan_ratio(endpoint, workdir, args.ids, "scan-statuses, latency model"))
            results.append(
                scan_ratio(
                    endpoint,
                    workdir,
                    args.ids,
                    "scan-statuses, latency model, botocore's parser",
                    ours=lambda url: botocore_parsed(client(url)),
                )
            )
            print(*results, sep="\n", flush=True)

        for page_ms in SCAN_PAGE_MS:
            with latency_model(scan_page_ms=page_ms) as endpoint:
                seed_table(endpoint, args.ids)
                label = f"scan-statuses, model + {page_ms:.0f} ms per 1 MB page"
                results.append(scan_ratio(endpoint, workdir, args.ids, label))
            print(results[-1], flush=True)

        with latency_model() as endpoint:
            seed_table(endpoint, args.rss_rows)
            rss_mb, rss_s = peak_rss_of_scan(endpoint, workdir / "big.txt")
            lines = sum(1 for _ in (workdir / "big.txt").open())
        print("rss", rss_mb, rss_s, lines, flush=True)

        with moto_server() as moto, AwsProxy(moto, latency_s=LATENCY_S) as proxy:
            os.environ.update(aws_environment(moto))
            create_table(client(moto), TABLE)
            our_upload(client(moto), ids(args.moto_ids))
            label = "scan-statuses, moto + 10 ms proxy"
            results.append(scan_ratio(proxy.url, workdir, args.moto_ids, label))
            print(results[-1], flush=True)

    body = f"""\
Measured {machine()}. Every request pays a 10 ms round trip. "Seed" is the
Grid's original scan: one sequential Scan. Ours: 8 parallel scan segments
streamed through a bounded queue, plain pages read by `json`.

{table(["what", "rows", "seed rows/s", "ours rows/s", "ratio"], results)}

Rows measured in one run on a shared machine: at small sizes (`--ids`) and
under load the ratios move from run to run.

- **Latency model** (`benchmarks/dynamodb_model.py`): answers from memory in
  its own process after the 10 ms, as DynamoDB's fleet does whatever the
  number of calls in flight; this measures the client's design. Target:
  scan ≥ 2×.
- **Scan**: botocore reads a Scan page by walking every attribute value
  through the service model, about 6 µs of CPU a row (`json.loads` alone:
  under 1 µs), so with botocore's parser parallel segments overlap only the
  waiting and run near the rate at which one core parses (the "botocore's
  parser" row). Pages of only strings and numbers read the same through
  `json` alone (`read_plain_items`, docs/state-table.md), which lifts that
  limit. Real DynamoDB also spends time reading each 1 MB page (and the
  network carrying it to an operator's machine); the "+ N ms per 1 MB page"
  rows add that store time as a sweep rather than one made-up figure. Scan
  ratios are the median of {SCAN_REPEATS} interleaved runs.
- **moto + 10 ms proxy**: moto is one CPU-bound process, and it walks every
  item of the table for each scan segment (it filters by segment as it goes),
  so 8 segments cost it 8 times the work of one sequential Scan: on moto the
  emulator is what is measured, not the client's design.
- **Memory**: `reingest scan-statuses` of {args.rss_rows:,} rows, in a fresh
  process: peak RSS **{rss_mb:.0f} MB** ({lines:,} lines written in
  {rss_s:.1f} s); target ≤ 150 MB. Scan pages hold at most
  {SCAN_PAGE_ITEMS:,} items and at most 8 wait in a queue, so memory does not
  grow with the table.

Re-run: `python -m benchmarks.state_table --only scan` (a few minutes).
"""
    write_section("State table: scan-statuses", body)


def seed_table(endpoint: str, n: int) -> None:
    """Fill the model's table with `n` items at once (no calls measured)."""
    requests.post(f"{endpoint}/_seed?n={n}&table={TABLE}", timeout=600).raise_for_status()


def main(argv: list[str] | None = None) -> None:
    """Measure and write the sections of docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("upload", "scan"), help="one of the two measurements")
    parser.add_argument("--upload-ids", type=int, default=50_000, help="ids per upload, model")
    parser.add_argument("--moto-ids", type=int, default=20_000, help="ids per upload or scan, moto")
    parser.add_argument("--ids", type=int, default=200_000, help="rows per scan, model")
    parser.add_argument("--rss-rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    os.environ.update(aws_environment())  # dummy credentials: nothing reaches AWS
    if args.only != "scan":
        measure_uploads(args)
    if args.only != "upload":
        measure_scans(args)


if __name__ == "__main__":
    main()
