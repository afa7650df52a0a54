"""A full reingestion pass on this machine: emulated AWS, a simulated Grid, the real code.

moto's server stands in for AWS (DynamoDB, Kinesis, CloudWatch, EventBridge),
the simulated Grid for the Grid's services, and a thrall-like consumer for
thrall. The operator commands and the Lambda handlers are the project's own,
run in this process with the environment their deployed functions get:

1. create the state table, thrall's stream and the two schedules (off);
2. `reingest upload-ids` a file of ids (a few of them broken on purpose);
3. `reingest start`, then batch-index runs on its "schedule" (each
   invocation keeps going while it finds work, as many images in flight as
   the controller allows: its limit is printed from the control item as it
   changes) until it switches its own rule off;
4. thrall indexes what arrived on its stream;
5. `reingest start --worker check`, then batch-check runs until it switches
   its own rule off;
6. `reingest stats` and `reingest scan-statuses`.

    make demo            (or: .venv/bin/python scripts/demo.py --ids 300)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The handlers' own log lines and metrics would drown the story; the demo prints
# each invocation's summary instead. Set before Powertools is imported.
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

import boto3  # noqa: E402

from devtools.grid_sim import GridSim  # noqa: E402
from devtools.local_lambda import FakeContext, invoke  # noqa: E402
from devtools.servers import aws_environment, moto_server  # noqa: E402
from devtools.thrall_consumer import read_stream  # noqa: E402
from devtools.thrall_metrics import report_iterator_age  # noqa: E402
from grid_reingest.adapters.dynamodb.control import ControlTable  # noqa: E402
from grid_reingest.adapters.dynamodb.schema import create_table  # noqa: E402
from grid_reingest.handlers import batch_check, batch_index  # noqa: E402
from grid_reingest_cli.main import main as reingest  # noqa: E402

STAGE = "DEMO"
TABLE = f"grid-reingest-{STAGE}"
STREAM = f"media-service-thrall-low-priority-{STAGE}"
INDEX_RULE = f"grid-reingest-batch-index-{STAGE}"
CHECK_RULE = f"grid-reingest-batch-check-{STAGE}"
# A scheduled run that never ends is a bug: the demo gives up after this many invocations.
MAX_INVOCATIONS = 100


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def provision(endpoint: str) -> None:
    """What the CDK stack deploys, made directly on the emulator."""
    create_table(boto3.client("dynamodb", endpoint_url=endpoint), TABLE)
    kinesis = boto3.client("kinesis", endpoint_url=endpoint)
    kinesis.create_stream(StreamName=STREAM, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=STREAM)
    events = boto3.client("events", endpoint_url=endpoint)
    for rule in (INDEX_RULE, CHECK_RULE):
        events.put_rule(Name=rule, ScheduleExpression="rate(1 minute)", State="DISABLED")
    # thrall is keeping up: a low iterator age, so back-pressure lets work through.
    report_iterator_age(boto3.client("cloudwatch", endpoint_url=endpoint), STREAM, 850.0)


def image_ids(n: int) -> list[str]:
    """Ids shaped like the Grid's: the SHA-1 of an original file."""
    return [
        hashlib.sha1(f"original-{i}.jpg".encode(), usedforsecurity=False).hexdigest()
        for i in range(n)
    ]


def break_some(grid: GridSim, ids: list[str]) -> None:
    """A few images that fail the way real ones do."""
    grid.missing.update(ids[0:3])  # image-loader has no such image: state 2
    for image_id in ids[3:5]:
        grid.known_loader_error(image_id)  # corrupt original: state 4
    grid.huge.add(ids[5])  # too big for a Kinesis record: state 9001
    grid.fail(ids[6], "usages", 500, times=1)  # a passing failure: retried next time


def watch_control(control: ControlTable, done: threading.Event) -> None:
    """Print the controller's limit from the control item each time it changes."""
    last = None
    while not done.wait(0.2):
        pace = control.read().pace
        if pace is not None and (pace.limit, pace.reason) != last:
            last = (pace.limit, pace.reason)
            print(f"    controller: limit {pace.limit:.0f} in flight ({pace.reason})", flush=True)


def run_schedule(module, env: dict[str, str], rule: str, events, control=None) -> int:
    """Invoke a worker once a "minute" until it switches its own rule off."""
    for n in range(1, MAX_INVOCATIONS + 1):
        done = threading.Event()
        watcher = threading.Thread(target=watch_control, args=(control, done), daemon=True)
        if control is not None:
            watcher.start()
        try:
            report = invoke(
                module, env, {"source": "aws.events"}, FakeContext(function_name=rule), fresh=n == 1
            )
        finally:
            done.set()
            if control is not None:
                watcher.join()
        states = ", ".join(f"{k}: {v}" for k, v in report["states"].items()) or "-"
        line = f"  invocation {n}: claimed {report['claimed']}, states written {{{states}}}"
        if report.get("skipped"):
            line += f"; skipped: {report['skipped']}"
        if report["finishedPass"]:
            line += "; nothing left: pass finished"
        print(line, flush=True)
        if events.describe_rule(Name=rule)["State"] == "DISABLED":
            print(f"  {rule} switched itself off", flush=True)
            return n
    raise SystemExit(f"{rule} still enabled after {MAX_INVOCATIONS} invocations")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=300, help="how many images (default 300)")
    args = parser.parse_args()

    with (
        moto_server() as endpoint,
        GridSim(latency={"image-loader": 0.05}, default_latency=0.01) as grid,
        tempfile.TemporaryDirectory() as tmp,
    ):
        os.environ.update(aws_environment(endpoint))
        say(f"emulated AWS at {endpoint}, simulated Grid at {grid.url}")
        provision(endpoint)
        events = boto3.client("events", endpoint_url=endpoint)

        ids = image_ids(args.ids)
        break_some(grid, ids)
        grid.index_all = False  # media-api has an image only once thrall indexed it
        ids_file = Path(tmp) / "ids.txt"
        ids_file.write_text("\ufeff" + "\r\n".join(ids + ids[:10]) + "\r\n")

        say(f"reingest upload-ids ({len(ids)} ids, 10 repeated, a BOM and CRLF)")
        if reingest(["upload-ids", "--table", TABLE, str(ids_file)]):
            return 1

        common = {
            "STAGE": STAGE,
            "STATE_TABLE_NAME": TABLE,
            "GRID_CONCURRENCY": "16",
            "PACE_REFRESH_SECONDS": "1",  # a decision a second: the limit moves in view
            **grid.env(),
        }
        index_env = {
            **common,
            "THRALL_STREAM_NAME": STREAM,
            "SCHEDULE_RULE_NAME": INDEX_RULE,
            "MAX_IN_FLIGHT": "16",
            "PROJECTION_TIMEOUT_SECONDS": "30",
            "RECORD_BUDGET_SECONDS": "20",
            "STOP_MARGIN_SECONDS": "60",
        }
        check_env = {**common, "SCHEDULE_RULE_NAME": CHECK_RULE, "CHECK_MIN_AGE_SECONDS": "0"}

        say("reingest start: batch-index runs until it switches its rule off")
        if reingest(["start", "--rule", INDEX_RULE, "--worker", "index"]):
            return 1
        control = ControlTable(TABLE, boto3.client("dynamodb", endpoint_url=endpoint))
        run_schedule(batch_index, index_env, INDEX_RULE, events, control)

        say("thrall indexes what arrived on its stream")
        messages = read_stream(boto3.client("kinesis", endpoint_url=endpoint), STREAM)
        grid.indexed.update(message["image"]["id"] for _, message in messages)
        print(f"  {len(messages)} reingest-image messages read and indexed")

        say("reingest start --worker check: batch-check runs until it switches its rule off")
        if reingest(["start", "--rule", CHECK_RULE, "--worker", "check"]):
            return 1
        run_schedule(batch_check, check_env, CHECK_RULE, events)

        say("reingest stats")
        reingest(["stats", "--table", TABLE])
        statuses = Path(tmp) / "statuses.txt"
        say("reingest scan-statuses")
        reingest(["scan-statuses", "--table", TABLE, str(statuses)])
        print(f"  first lines of {statuses.name}:")
        for line in statuses.read_text().splitlines()[:3]:
            print(f"    {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
