"""What `reingest run` says at the end: the counts once the tally has caught up, the failures,
the rate, and the run's pass; as text or as one JSON line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping

from grid_reingest.domain.states import ProgressState as S
from grid_reingest_cli import counting, status, watch
from grid_reingest_cli.common import INCOMPLETE, OK, USAGE, CliError, count_lines, wants_json

# How long the report waits for the tally to catch up with the pass's last writes.
SETTLE_SECONDS = 30.0


def final_counts(table, counter: counting.StateCounter) -> tuple[dict[int, int], bool]:
    """The counts to report, and whether every image reached 6 (asked of the index: exact).

    The tally is seconds behind the last writes: it is read again until it agrees with
    the index on whether anything is left unverified, for at most SETTLE_SECONDS.
    """
    others = [s for s in S if s != S.VERIFIED]
    complete = not table.has_any(others)
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        counts = counter.count().counts
        agrees = complete == (sum(n for s, n in counts.items() if s != S.VERIFIED) == 0)
        if agrees or time.monotonic() >= deadline:
            return counts, complete and sum(counts.values()) > 0
        watch.sleep(2)


def failure_lines(counts: Mapping[int, int]) -> list[str]:
    """The report's failures: the one place `run` asks for them.

    Counts of the failure states for now; `reingest failures` groups them by reason.
    """
    failed = [S.NOT_FOUND, S.KNOWN_ERROR, S.NOT_FOUND_IN_MEDIA_API, S.UNKNOWN_ERROR, S.TOO_BIG]
    return [f"{counts.get(s, 0):>12,} at {int(s)} ({s.label})" for s in failed if counts.get(s)]


def report(
    args: argparse.Namespace,
    before: Mapping[int, int],
    after: Mapping[int, int],
    seconds: float,
    table: str,
    *,
    complete: bool,
    ended=None,
) -> int:
    """Print the run's report; the exit code: OK when every image reached 6."""
    total = sum(after.values())
    verified = after.get(S.VERIFIED, 0)
    unfinished = (S.NOT_STARTED, S.IN_PROGRESS, S.ENQUEUED, S.LOOKING_FOR_IMAGE)
    finished_before = sum(n for s, n in before.items() if s not in unfinished)
    finished_now = sum(n for s, n in after.items() if s not in unfinished)
    moved = max(finished_now - finished_before, 0)
    per_minute = moved * 60 / seconds if seconds > 0 else 0.0
    failures = failure_lines(after)
    if wants_json(args):
        print(
            json.dumps(
                {
                    "report": True,
                    "stage": args.stage,
                    "table": table,
                    "total": total,
                    "states": {str(s): n for s, n in sorted(after.items()) if n},
                    "verified": verified,
                    "complete": complete,
                    "finishedThisRun": moved,
                    "durationSeconds": round(seconds, 3),
                    "imagesPerMinute": round(per_minute, 1),
                    **_pass_json(ended),
                },
                separators=(",", ":"),
            )
        )
    else:
        print("-- report")
        print(*count_lines({s: n for s, n in after.items() if n}, table), sep="\n")
        print("failures:" if failures else "failures: none")
        for line in failures:
            print(line)
        print(
            f"finished in this run: {moved:,} image(s) in {status.duration(seconds)} "
            f"({per_minute:,.0f}/min, the whole pass: indexed and checked)"
        )
        if ended is not None and ended.report is not None:
            print(f"pass {ended.id} ({ended.kind.value}):")
            print(*(f"  {line}" for line in ended.report.text(ended.kind).splitlines()), sep="\n")
    if complete:
        print("every image reached 6 (verified)", file=sys.stderr)
        return OK
    if total == 0:
        raise CliError("the table holds no image: nothing was uploaded", USAGE)
    print(
        f"{total - verified:,} image(s) did not reach 6: see `reingest failures --stage "
        f"{args.stage}`, then `reingest reset --stage {args.stage} --reason ID` (a group's id "
        "as `failures` lists it) and run again",
        file=sys.stderr,
    )
    return INCOMPLETE


def _pass_json(ended) -> dict:
    """The run's pass in its JSON report (none without --missing-only or --new-pass)."""
    if ended is None or ended.report is None:
        return {}
    return {
        "pass": ended.id,
        "kind": ended.kind.value,
        "present": ended.report.present,
        "repaired": ended.report.repaired,
        "failed": ended.report.failed,
    }
