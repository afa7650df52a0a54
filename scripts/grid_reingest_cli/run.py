"""reingest run: a whole pass in one command, resumable.

upload (keeping items already in the table) → start batch-index and
batch-check together (batch-check checks what batch-index enqueued a while
ago, so a pass takes about the longer of the two, not their sum) → watch until
both switch themselves off → report. Each step is
decided from the table's states and the rules' states, so that a run
interrupted and started again carries on where the pass is.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

from grid_reingest import names
from grid_reingest.adapters.dynamodb.control import ControlTable
from grid_reingest.adapters.eventbridge import rule_state
from grid_reingest.domain.passes import Arming, Kind
from grid_reingest_cli import (
    clients,
    counting,
    passes,
    plan,
    preflight,
    run_report,
    schedules,
    upload_ids,
    watch,
)
from grid_reingest_cli import run_pass as pass_record
from grid_reingest_cli.common import (
    INTERRUPTED,
    MAX_PARALLEL,
    OK,
    USAGE,
    CliError,
    add_account_options,
    add_output_options,
    add_parallel_option,
    confirm_stage,
    not_blank,
    open_table,
    wants_json,
)
from grid_reingest_cli.stack import WORKERS, resolve, rule_name

DESCRIPTION = """\
The whole pass in one command:

  1. upload FILE's ids at state 0 (ids already in the table keep their state);
  2. start batch-index and batch-check together: batch-check confirms in
     media-api what batch-index enqueued, once thrall has had time to index
     it, while batch-index goes on (a pass takes about the longer of the two, not their sum);
  3. watch until both switch themselves off: each worker's rate and ETA, and
     the whole pass's, checking included;
  4. report: items per state, failures, the whole pass's throughput and duration.

Resumable: interrupted (Ctrl-C) and run again, it carries on from the table's
states and the rules' states: it never uploads over progress, follows a worker
that is still running, and does not start again a worker that has finished.
Ctrl-C stops only the watching: the workers keep to their schedules.

A paused stage (`reingest pause`) is refused before anything is written:
`reingest resume` first. A lease table of thrall's that the deployed
batch-index cannot read is said at once (a warning: it paces on CloudWatch).

On PROD it asks you to type the stage name before its first write (--yes to
skip). --dry-run prints the pass's plan (as `reingest plan`) and changes nothing.

--missing-only repairs what media-api lacks, re-projecting nothing else: a
check-first pass. FILE's ids go in at state 3 for batch-check first; those
media-api has end at 6 at once, those it lacks go back to batch-index (0),
are re-projected and checked again. Both workers are started together, and
the report says how many were present, repaired and failed.

--new-pass (with or without --missing-only) starts a new pass over ids a
finished pass left final (2, 4, 6, 7, 8, 9001): they are armed again, at 0
(or at 3 to be checked first), attempts and errors cleared. Without it, ids
already in the table keep their state (a 6 stays 6). Either flag records the
pass (`reingest passes` lists it, with its report); one pass runs at a time:
--new-pass while a pass runs is refused before anything is written, and so is
a run whose pass differs from the one running (its kind or its file). Run the
same command again to carry on its own pass.
"""

EPILOG = """\
examples:
  reingest run ids.txt --stage TEST
  reingest run originals.txt --stage PROD --missing-only      # repair what media-api lacks
  reingest run ids.txt --stage PROD --new-pass                # again, over a finished pass
  reingest run ids.txt --stage PROD --interval 300
  reingest run ids.txt --stage PROD --dry-run

exit codes: 0 every image reached state 6 (verified); 3 the pass ran to its end
but some images did not (the report lists them; see `reingest reset`); 1 AWS or
the table failed; 2 bad arguments or input; 130 interrupted (run it again to
continue).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="a whole pass: upload, index, check, report (resumable)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="file of ids, one per line; - for stdin")
    parser.add_argument(
        "--stage",
        required=True,
        type=not_blank("--stage"),
        help="TEST, PROD...: the stack to run on",
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for the stage name on PROD")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan (cost and time); change nothing"
    )
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="upload the valid ids even if some lines are not",
    )
    upload_ids.add_allow_any_id_option(parser)
    parser.add_argument(
        "--missing-only",
        action="store_true",
        help="a check-first pass: ask media-api first, re-project only the ids it lacks",
    )
    parser.add_argument(
        "--new-pass",
        action="store_true",
        help="a new pass: re-arm ids a finished pass left final (refused while a pass runs)",
    )
    watch.add_watch_options(parser)
    plan.add_plan_options(parser)
    add_output_options(parser)
    group = parser.add_argument_group("AWS (AWS_ENDPOINT_URL, if set, points every call elsewhere)")
    add_account_options(group)
    add_parallel_option(
        group, 16, f"requests to DynamoDB at once (default 16, at most {MAX_PARALLEL})"
    )
    parser.set_defaults(run=run, table=None)


def run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return plan.run(args)
    if args.file != "-":
        plan.check_readable(args.file)
    if pass_record.wanted(args):
        pass_record.check_input(args)
    started = time.monotonic()
    args.table = resolve(args, names.STATE_TABLE_OUTPUT)
    rules = {w: rule_name(args, w) for w in WORKERS}
    events = clients.client(args, "events")
    # With --output json, stdout carries only JSON; the story goes to stderr.
    say = sys.stderr if wants_json(args) else sys.stdout
    try:
        with open_table(args) as table:
            _preflight(args, table, say)
            counter = counting.StateCounter(table)
            before = counter.count().counts
            if sum(before.values()):
                print(
                    f"{table.name} already holds {sum(before.values()):,} item(s): "
                    "carrying on from their states",
                    file=say,
                )
            confirm_stage(args.stage, "reingest run writes to the state table", args.yes)
            run_pass = _begin_pass(args, table, say)
            with contextlib.redirect_stdout(say):
                _upload(args, run_pass.arming if run_pass else None)
            src = watch.sources(args, table)
            src.counter = counter
            if run_pass is not None:
                run_pass = pass_record.loaded(table, run_pass)
            if run_pass is not None and run_pass.arming.kind is Kind.CHECK_FIRST:
                # batch-check looks first; batch-index re-projects what it sends back.
                _together(events=events, rules=rules, src=src, args=args, say=say)
            else:
                # Each start is decided from the index (is there work?), never from counts
                # that may be seconds behind; both start together, then one watch follows both.
                steps = [
                    _start(worker, events=events, rule=rules[worker], src=src, say=say)
                    for worker in passes.WORKERS
                ]
                if any(step != "skip" for step in steps):
                    watch.follow(src, args, until="both")
            after, complete = run_report.final_counts(table, counter)
            ended = pass_record.ended(table, run_pass) if run_pass is not None else None
    except KeyboardInterrupt:
        print(f"reingest run: interrupted; {_carry_on(args)}", file=sys.stderr)
        return INTERRUPTED
    seconds = time.monotonic() - started
    return run_report.report(
        args, before, after, seconds, table.name, complete=complete, ended=ended
    )


def _begin_pass(args: argparse.Namespace, table, say) -> pass_record.RunPass | None:
    """The pass this run records (--missing-only, --new-pass), said; None without them."""
    if not pass_record.wanted(args):
        return None
    run_pass = pass_record.begin(args, table)
    record = run_pass.record
    verb = "carrying on" if run_pass.carried_on else "started"
    print(f"-- pass {record.id} ({record.kind.value}): {verb}", file=say)
    return run_pass


def _together(*, events, rules, src, args, say) -> None:
    """Switch both workers on and follow them until both have switched themselves off."""
    for worker in passes.WORKERS:
        try:
            enabled = rule_state(events, rules[worker])["State"] == "ENABLED"
        except LookupError as error:
            raise CliError(f"{WORKERS[worker]}: {error}") from None
        if not enabled:
            schedules.switch(events, rules[worker], True)
    print(
        "-- batch-check and batch-index: schedules on; watching until both switch themselves off",
        file=say,
    )
    watch.follow(src, args, until="both")


def _preflight(args: argparse.Namespace, table, say) -> None:
    """Refuse a paused stage before anything is written; warn of a lease table batch-index
    cannot read."""
    stopped = preflight.paused(ControlTable(table.name, table.client).read().knobs, args.stage)
    if stopped:
        raise CliError(f"{stopped}; nothing was uploaded or started", USAGE)
    problem = preflight.lease_table(args)
    if problem:
        print(f"warning: {problem}", file=sys.stderr)


def _carry_on(args: argparse.Namespace) -> str:
    """What to do after Ctrl-C, as the pass stands."""
    with contextlib.suppress(Exception), open_table(args) as table:
        if ControlTable(table.name, table.client).read().knobs.paused:
            return (
                "the pass is paused: `reingest resume --stage "
                f"{args.stage}`, then run the same command again to carry on"
            )
    return (
        "the workers keep to their schedules. Run the same command again to carry on "
        f"(`reingest pause --stage {args.stage}` stops them taking work)"
    )


def _upload(args: argparse.Namespace, arming: Arming | None = None) -> None:
    """FILE into the table through upload-ids' own entry point, keeping existing items (armed
    for the run's pass, if any)."""
    parser = argparse.ArgumentParser(prog="reingest")
    upload_ids.add_parser(parser.add_subparsers())
    # upload-ids keeps ids already in the table by default: never upload over progress.
    argv = ["upload-ids", args.file, "--table", args.table, "--parallel", str(args.parallel)]
    argv += [
        flag
        for flag, on in (
            ("--skip-invalid", args.skip_invalid),
            ("--allow-any-id", args.allow_any_id),
        )
        if on
    ]
    for option, value in (
        ("--region", args.region),
        ("--profile", args.profile),
        ("--endpoint-url", args.endpoint_url),
    ):
        if value:
            argv += [option, value]
    upload = parser.parse_args(argv)
    upload.arming = arming
    if arming is not None and arming.rearm:
        print("-- upload-ids (ids a finished pass left final are armed again; others kept)")
    else:
        print("-- upload-ids (ids already in the table keep their state)")
    code = upload.run(upload)
    if code != OK:
        raise CliError(f"upload-ids ended with exit code {code}: nothing started", code)


def _start(worker, *, events, rule, src, say) -> str:
    """Switch `worker`'s schedule on if it has work and is off; its step ("start", "watch"
    when already on, "skip" when finished)."""
    name = WORKERS[worker]
    try:
        enabled = rule_state(events, rule)["State"] == "ENABLED"
    except LookupError as error:
        raise CliError(f"{name}: {error}") from None
    states = list(src.works[worker].states)
    if worker == "check":
        states += src.works["index"].states  # what batch-index will enqueue is checked too
    step = passes.next_step(enabled, src.table.has_any(states))
    if step == "skip":
        print(f"-- {name}: nothing to do (finished, or nothing reached it)", file=say)
    elif step == "start":
        schedules.switch(events, rule, True)
        print(f"-- {name}: schedule {rule} switched on", file=say)
    else:
        print(f"-- {name}: already running", file=say)
    return step
