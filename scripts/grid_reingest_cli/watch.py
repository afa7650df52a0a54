"""reingest watch: a pass's progress, refreshed until both workers are done."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from grid_reingest import names, settings
from grid_reingest.adapters.cloudwatch import iterator_age_points
from grid_reingest.adapters.dynamodb.control import ControlTable
from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest.adapters.eventbridge import rule_state
from grid_reingest.domain.control import Control
from grid_reingest.domain.states import ProgressState as S
from grid_reingest_cli import clients, counting, passes, status
from grid_reingest_cli.common import (
    OK,
    CliError,
    add_aws_options,
    add_output_options,
    explain_aws_error,
    number_between,
    open_table,
    wants_json,
)
from grid_reingest_cli.stack import WORKERS, function_environment, rule_name
from grid_reingest_cli.watch_view import render_json, render_text

DESCRIPTION = """\
Follow a pass: every --interval seconds, the items per state (only the states
that hold items; from the table's tally, one read whatever its size, or a scan
where the tally cannot be trusted, which it says) and what changed, each
worker's rate over the last --window minutes and the ETA of its part, why a
worker is idle ("rule off", "paused", "back-pressure: iterator age 95 s > 60 s",
"no iterator-age data"), the pace controller's current limit and why it is
there, and thrall's iterator age.

With --stage, the rules, thrall's stream and the threshold come from the stack
and the deployed batch-index; it stops by itself when both schedules are off and
nothing is held by a worker. Without a stage, until Ctrl-C (exit 130).

On a terminal each worker gets a progress bar; piped, each look is flushed
line by line; --output json prints one JSON object per look, one per line.
"""

# A look that fails this many times in a row ends the watch with the error; fewer are
# reported and retried at the next look.
MAX_FAILED_LOOKS = 3
DEFAULT_THRESHOLD_S = settings.MAX_ITERATOR_AGE_MS.default_value / 1000
# Beyond these an option is a typo: a look a day, a rate over a day, an age of a week
# (Kinesis keeps records a day by default).
MAX_INTERVAL_S = 86_400
MAX_WINDOW_MINUTES = 1_440
MAX_ITERATOR_AGE_S = 7 * 86_400


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="follow a pass until the workers are done",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  reingest watch --stage PROD --interval 300\n"
        "  reingest watch --stage PROD --output json | jq .workers.index.etaSeconds",
    )
    add_watch_options(parser)
    parser.add_argument("--once", action="store_true", help="look once and stop")
    add_output_options(parser)
    add_aws_options(parser)
    parser.set_defaults(run=run)


def add_watch_options(parser: argparse.ArgumentParser) -> None:
    """--interval, --window, --stream and --max-iterator-age (watch and run)."""
    parser.add_argument(
        "--interval",
        type=number_between(0, MAX_INTERVAL_S, " s"),
        default=60,
        help=f"seconds between looks (default 60, at most {MAX_INTERVAL_S:,})",
    )
    parser.add_argument(
        "--window",
        type=number_between(0, MAX_WINDOW_MINUTES, " min"),
        default=5,
        help=f"minutes the rate is measured over (default 5, at most {MAX_WINDOW_MINUTES:,})",
    )
    parser.add_argument(
        "--stream",
        action="append",
        metavar="NAME",
        help="thrall stream whose iterator age to show (default: the deployed batch-index's)",
    )
    parser.add_argument(
        "--max-iterator-age",
        type=number_between(0, MAX_ITERATOR_AGE_S, " s"),
        metavar="SECONDS",
        help="back-pressure threshold (default: the deployed batch-index's, else "
        f"{DEFAULT_THRESHOLD_S:.0f})",
    )


@dataclass
class Sources:
    """Everything a look reads."""

    table: OperatorTable
    control: ControlTable
    events: Any = None
    rules: dict[str, str] = field(default_factory=dict)
    cloudwatch: Any = None
    streams: tuple[str, ...] = ()
    threshold_s: float | None = DEFAULT_THRESHOLD_S
    works: Mapping[str, passes.Work] = field(default_factory=lambda: dict(passes.DEFAULT_WORK))
    counter: counting.StateCounter | None = None

    def count(self) -> counting.Counted:
        """The items per state: the tally, or a scan where it cannot be trusted."""
        if self.counter is None:
            self.counter = counting.StateCounter(self.table)
        return self.counter.count()


@dataclass(frozen=True)
class PassView:
    """The whole pass: images finished (verified or failed), left, its rate and ETA."""

    done: int
    remaining: int
    rate_per_minute: float | None
    eta_seconds: float | None


@dataclass(frozen=True)
class Look:
    """One reading of the pass."""

    at: datetime
    counts: dict[int, int]
    control: Control
    rules: dict[str, str]
    iterator_age_s: float | None
    previous_age_s: float | None
    workers: dict[str, status.WorkerView]
    counted: counting.Counted | None = None
    # Workers whose rule is off and that hold nothing, asked of the index (exact), not
    # taken from the counts (the tally is seconds behind).
    settled: frozenset[str] = frozenset()
    # The whole pass, checking included: images verified or failed, and the rest.
    whole: PassView | None = None

    @property
    def all_done(self) -> bool:
        """Both rules known, both off, nothing held."""
        return bool(self.rules) and all(self.worker_done(w) for w in passes.WORKERS)

    def worker_done(self, worker: str) -> bool:
        """`worker`'s rule is known and off, and it holds nothing."""
        return self.rules.get(worker) == "DISABLED" and worker in self.settled


def sources(args: argparse.Namespace, table: OperatorTable) -> Sources:
    """What a watch of `args` reads: the rules, streams and threshold from the stage if any."""
    env = function_environment(args, names.BATCH_INDEX) if args.stage else {}
    streams = tuple(args.stream or ()) or _deployed_streams(env)
    threshold = args.max_iterator_age
    if threshold is None:
        deployed = env.get(settings.MAX_ITERATOR_AGE_MS.name)
        threshold = int(deployed) / 1000 if deployed else DEFAULT_THRESHOLD_S
    works = passes.work(
        _state(env.get(settings.INDEX_START_STATE.name)),
        _state(function_environment(args, names.BATCH_CHECK).get(settings.CHECK_START_STATE.name))
        if args.stage
        else None,
    )
    return Sources(
        table=table,
        control=ControlTable(table.name, table.client),
        events=clients.client(args, "events") if args.stage else None,
        rules={w: rule_name(args, w) for w in WORKERS} if args.stage else {},
        cloudwatch=clients.client(args, "cloudwatch") if streams else None,
        streams=streams,
        threshold_s=threshold,
        works=works,
    )


def _deployed_streams(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get(settings.BACKPRESSURE_STREAMS.name) or env.get(
        settings.THRALL_STREAM_NAME.name, ""
    )
    # CloudWatch names a stream by its name; the setting may hold an ARN.
    return tuple(n.strip().rsplit("/", 1)[-1] for n in raw.split(",") if n.strip())


def _state(raw: str | None) -> S | None:
    try:
        return S.parse(raw) if raw else None
    except ValueError:
        return None


class Watcher:
    """Takes looks and keeps the readings that rates are measured from."""

    def __init__(self, src: Sources, window_minutes: float) -> None:
        self.src = src
        self.meters = {w: status.RateMeter(window_minutes * 60) for w in (*passes.WORKERS, "pass")}

    def look(self) -> Look:
        counted = self.src.count()
        counts = counted.counts
        control = self.src.control.read()
        try:
            rules = {w: rule_state(self.src.events, r)["State"] for w, r in self.src.rules.items()}
        except LookupError as error:
            raise CliError(f"{error}: is the stack deployed whole?") from None
        age = previous = None
        if self.src.streams:
            points = iterator_age_points(self.src.cloudwatch, self.src.streams, datetime.now(UTC))
            if points is not None:
                age = points[0] / 1000
                previous = None if points[1] is None else points[1] / 1000
        now = clock()
        total = sum(counts.values())
        views = {}
        for worker in passes.WORKERS:
            work = self.src.works[worker]
            remaining = passes.remaining(counts, work)
            if worker == "index":
                done = total - remaining
            else:
                done = counts.get(S.VERIFIED, 0) + counts.get(S.NOT_FOUND_IN_MEDIA_API, 0)
            if worker == "check":
                # batch-check's part is also everything batch-index has still to enqueue
                remaining += passes.remaining(counts, self.src.works["index"])
            rate = self.meters[worker].add(now, done)
            blocked = status.idle_reason(
                worker,
                rule=rules.get(worker),
                paused=control.knobs.paused,
                iterator_age_s=age,
                threshold_s=self.src.threshold_s,
                streams_known=bool(self.src.streams),
            )
            views[worker] = status.worker_view(
                worker,
                rule=rules.get(worker),
                remaining=remaining,
                held=counts.get(work.held, 0),
                done=done,
                rate_per_minute=rate,
                blocked_by=blocked,
            )
        # batch-index and batch-check run together: the pass ends when the last image is
        # checked, so its rate is finished images a minute and its ETA what is left at it.
        left = passes.remaining(counts, self.src.works["index"]) + passes.remaining(
            counts, self.src.works["check"]
        )
        rate = self.meters["pass"].add(now, total - left)
        whole = PassView(total - left, left, rate, status.eta_seconds(left, rate))
        settled = frozenset(
            worker
            for worker in passes.WORKERS
            if rules.get(worker) == "DISABLED"
            and not self.src.table.has_any([self.src.works[worker].held])
        )
        return Look(
            datetime.now(UTC), counts, control, rules, age, previous, views, counted, settled, whole
        )


def run(args: argparse.Namespace) -> int:
    with open_table(args) as table:
        src = sources(args, table)
        follow(src, args, until=None if args.once else "both")
    return OK


def follow(
    src: Sources,
    args: argparse.Namespace,
    until: str | None,
    out: TextIO | None = None,
) -> Look:
    """Print looks every args.interval seconds until `until` ("both", a worker, or None: one
    look) is done; returns the last look."""
    out = out or sys.stdout
    _line_buffered(out)
    watcher = Watcher(src, args.window)
    as_json = wants_json(args)
    previous: Look | None = None
    failures = 0
    warned = False
    while True:
        try:
            current = watcher.look()
            failures = 0
        except (ClientError, BotoCoreError) as error:
            failures += 1
            if failures >= MAX_FAILED_LOOKS:
                raise CliError(
                    f"{failures} looks in a row failed, the last: {explain_aws_error(error)}"
                ) from None
            print(
                f"warning: this look failed, trying again: {explain_aws_error(error)}",
                file=sys.stderr,
            )
            sleep(args.interval)
            continue
        if not warned and current.counted is not None and current.counted.by == "scan":
            warned = True
            price = src.counter.scan_price(current.counted.total) if src.counter else None
            if price is not None and price.usd >= counting.WARN_ABOVE_USD:
                print(
                    f"warning: each look counts {src.table.name} by scanning it "
                    f"({current.counted.why_not_tally}): {price.describe()} a look",
                    file=sys.stderr,
                )
        out.write(
            render_json(current, src) + "\n"
            if as_json
            else render_text(current, src, previous, out.isatty())
        )
        out.flush()
        if until is None:
            return current
        if until == "both" and current.all_done:
            return current
        if until in passes.WORKERS and current.worker_done(until):
            return current
        previous = current
        sleep(args.interval)


def clock() -> float:
    """Seconds on a monotonic clock (a seam: tests make a minute pass between looks)."""
    return time.monotonic()


def sleep(seconds: float) -> None:
    """Wait between looks (a seam: tests move the workers here instead)."""
    time.sleep(seconds)


def _line_buffered(out: TextIO) -> None:
    # Piped into a log or `tee`, each look should arrive whole and at once.
    if not out.isatty() and hasattr(out, "reconfigure"):
        with contextlib.suppress(ValueError, OSError):
            out.reconfigure(line_buffering=True)
