"""`reingest run`'s pass record: `--missing-only` (a check-first pass) and `--new-pass`.

A run with either records a pass (docs/state-table.md, "Passes"): loading while
its ids are uploaded, armed for it; running once they are all in (the workers
end it, and only a running pass can end: a worker that empties its states
mid-upload cannot end it early); its report read back at the end. One pass at
a time: `--new-pass` while one runs is refused before anything is written; a
run without `--new-pass` carries on the pass that runs when it is the same
(same kind, same file), so that the command is resumable, and refuses any
other.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, replace

from grid_reingest.adapters.dynamodb.passes import PassRunning, PassTable
from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest.domain.isotime import utc_now
from grid_reingest.domain.passes import Arming, Kind, Pass, Status
from grid_reingest.flows.pass_end import PassEnd, end_pass_if_over
from grid_reingest_cli import upload_ids, watch
from grid_reingest_cli.common import USAGE, CliError

# How long the report waits for the worker that switched itself off last to end the pass.
END_WAIT_SECONDS = 30.0


@dataclass
class RunPass:
    """The pass a run loads and follows."""

    record: Pass
    arming: Arming
    carried_on: bool  # the pass was there already (a run started again)


def wanted(args: argparse.Namespace) -> bool:
    """Whether this run records a pass."""
    return bool(args.missing_only or args.new_pass)


def kind_of(args: argparse.Namespace) -> Kind:
    return Kind.CHECK_FIRST if args.missing_only else Kind.FULL


def source_of(args: argparse.Namespace) -> str:
    return os.path.abspath(args.file)


def check_input(args: argparse.Namespace) -> None:
    """FILE checked in whole before the pass is recorded (a pass whose file turns out bad half
    way would be left loading); CliError (exit 2) naming what is wrong."""
    flag = "--missing-only" if args.missing_only else "--new-pass"
    if args.file == "-":
        raise CliError(
            f"{flag} takes a file, not standard input: the pass records its file as its "
            "source, and a run started again carries on the pass of the same file",
            USAGE,
        )
    upload_ids.check_file(args.file, args.allow_any_id, args.skip_invalid)


def begin(args: argparse.Namespace, table: OperatorTable) -> RunPass:
    """Start the run's pass (loading), or carry on the same one; CliError (exit 2) when another
    pass runs, or any pass runs and --new-pass asks for a new one."""
    passes = PassTable(table.name, table.client)
    kind, source = kind_of(args), source_of(args)
    current = passes.current()
    if current is not None and current.status is not Status.FINISHED:
        same = current.kind is kind and current.source == source
        if args.new_pass or not same:
            raise CliError(f"{_refusal(current)}; nothing was uploaded or started", USAGE)
        arming = Arming(current.id, kind, rearm=args.new_pass)
        return RunPass(current, arming, carried_on=True)
    record = replace(Pass.start(kind, source, utc_now()), status=Status.LOADING)
    try:
        passes.start(record)
    except PassRunning as running:  # another started between the look and the write
        raise CliError(f"{_refusal(running.running)}; nothing was uploaded", USAGE) from None
    return RunPass(record, Arming(record.id, kind, rearm=args.new_pass), carried_on=False)


def _refusal(current: Pass) -> str:
    return (
        f"pass {current.id} ({current.kind.value}, from {current.source}, started "
        f"{current.started_at} by {current.started_by}) is still {current.status.value}: one "
        "pass at a time (follow it with `reingest watch`, or run its own command again)"
    )


def loaded(table: OperatorTable, run: RunPass) -> RunPass:
    """Every id in: the pass runs (the workers may end it from now on)."""
    passes = PassTable(table.name, table.client)
    if run.record.status is Status.LOADING:
        running = replace(run.record, status=Status.RUNNING)
        if passes.save(running, Status.LOADING):
            return replace(run, record=running)
    return replace(run, record=passes.current() or run.record)


def ended(table: OperatorTable, run: RunPass) -> Pass:
    """The pass once ended, with its report: as the last worker ended it, or, should none have
    (both switched off before it could), ended here (conditional, once)."""
    passes = PassTable(table.name, table.client)
    deadline = time.monotonic() + END_WAIT_SECONDS
    while True:
        current = passes.current()
        if current is None or current.id != run.record.id:
            raise CliError(f"pass {run.record.id} is no longer the table's current pass")
        if current.status is Status.FINISHED:
            return current
        if time.monotonic() >= deadline:
            break
        watch.sleep(2)
    end_pass_if_over(PassEnd(passes, table, utc_now))
    current = passes.current()
    if current is None or current.status is not Status.FINISHED:
        raise CliError(f"pass {run.record.id} has work left: the workers stopped before its end")
    return current
