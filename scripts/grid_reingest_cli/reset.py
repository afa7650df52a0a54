"""reingest reset: move items from some states back to another (0 by default)."""

from __future__ import annotations

import argparse
from datetime import timedelta

from grid_reingest.domain.isotime import format_instant, utc_now
from grid_reingest.domain.states import ProgressState, parse_states
from grid_reingest.settings import CLAIM_LEASE_SECONDS
from grid_reingest_cli import groups
from grid_reingest_cli.common import (
    OK,
    USAGE,
    CliError,
    add_aws_options,
    add_lease_option,
    open_table,
)
from grid_reingest_cli.output import confirm_typed, pipe_guard
from grid_reingest_cli.progress import Progress

# Above this many items, a reset asks before it starts.
CONFIRM_ABOVE = 1000
DEFAULT_LEASE_SECONDS = int(CLAIM_LEASE_SECONDS.default_value)
S = ProgressState
# Where an operator may put items. Never 1 or 5 (only a worker claims) nor 6
# (only batch-check's look in media-api verifies); 3 only for items whose
# message was published before (6, 7), so batch-check looks again.
ALLOWED_TO = (
    S.NOT_STARTED,
    S.ENQUEUED,
    S.NOT_FOUND,
    S.KNOWN_ERROR,
    S.NOT_FOUND_IN_MEDIA_API,
    S.UNKNOWN_ERROR,
    S.TOO_BIG,
)
RECHECK_FROM = (S.VERIFIED, S.NOT_FOUND_IN_MEDIA_API)

DESCRIPTION = f"""\
Move every item in the --from states to the --to state (default 0, ready for
batch-index again), with attempts back to 0. Each move is conditional on the
item being exactly as it was found (state and time of its last change): an
item a worker takes meanwhile is left alone.

--to may be 0 (run again), 3 (check again in media-api; only from 6 or 7,
whose message was published), or a failure state 2, 4, 7, 8 or 9001 (set
aside). Never 1 or 5 (only a worker claims an item) nor 6 (only batch-check
verifies one).

Items in 1 or 5 are held by a running worker: --from 1 or 5 is refused unless
--expired-only, which takes only items whose state is older than the claim
lease (--lease-seconds, default {DEFAULT_LEASE_SECONDS}: the workers'
CLAIM_LEASE_SECONDS), i.e. left by a worker that died.

--reason ID moves only failure group ID, as `reingest failures` lists it (e.g.
8-1f3a9c0d: the items of one state whose last error has one cause), and first
prints the group's reason and count. --from, if given, must name the group's
state. A group in 9001 (too big) is moved only with --from 9001: its images
fail the same way unless the size limit was raised or they changed. A group
number N is taken only with the exact --state list `reingest failures`
numbered it over (numbers change with the states listed and as items move).

Common uses:
  --from 4          re-run images that failed with a known error
  --from 8          re-run images whose retries ran out
  --reason 8-1f3a9c0d   re-run one group of failures only
  --from 7 --to 3   check again images media-api did not have
  --from 6,7        start a whole new pass over images already done
  --from 1,5 --expired-only   free items left by dead workers
"""

EPILOG = """\
examples:
  reingest reset --stage PROD --from 4,8 --dry-run
  reingest reset --stage PROD --reason 8-1f3a9c0d

exit codes: 0 done; 1 AWS failed (the items moved so far are counted);
2 bad arguments, refused states or an unknown group (nothing changed); 130 interrupted by
Ctrl-C (the items moved before are counted)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reset",
        help="move items from some states back to 0 (or --to)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    parser.add_argument(
        "--from",
        dest="from_states",
        metavar="STATE[,STATE...]",
        help="states to take items from (numbers or names); with --reason, the group's state",
    )
    parser.add_argument(
        "--to",
        dest="to_state",
        default="0",
        metavar="STATE",
        help="state to move them to (default 0; allowed 0, 2, 3, 4, 7, 8, 9001)",
    )
    parser.add_argument(
        "--reason",
        type=groups.parse_reference,
        metavar="ID",
        help="only failure group ID, as `reingest failures` lists it (e.g. 8-1f3a9c0d); "
        "a group number N only with --state",
    )
    groups.add_state_option(
        parser,
        "with --reason N: the states `reingest failures` numbered its groups over, as given "
        f"to it (its default: {groups.DEFAULT_STATES})",
    )
    parser.add_argument(
        "--expired-only",
        action="store_true",
        help="only items whose state is older than the claim lease (needed for --from 1 or 5)",
    )
    add_lease_option(parser, "with --expired-only", DEFAULT_LEASE_SECONDS)
    parser.add_argument("--dry-run", action="store_true", help="show the counts, change nothing")
    parser.add_argument(
        "--yes",
        action="store_true",
        help=f"do not ask for confirmation (asked on PROD or above {CONFIRM_ABOVE:,} items)",
    )
    add_aws_options(parser)
    parser.set_defaults(run=run)


def state_name(state: int) -> str:
    """e.g. '8 (blacklisted because of unknown failure)'."""
    try:
        return f"{state} ({ProgressState(state).label})"
    except ValueError:
        return f"{state} (not a known state)" if state >= 0 else "(no state)"


def check_target(to_state: ProgressState) -> None:
    """A CliError for a --to state the operator must never put items in."""
    if to_state not in ALLOWED_TO:
        why = (
            "only batch-check marks an image verified, after finding it in media-api"
            if to_state == S.VERIFIED
            else "only a worker may put an item in a claim state"
        )
        raise CliError(f"--to {int(to_state)}: {why}", USAGE)


def check_states(
    from_states: tuple[ProgressState, ...],
    to_state: ProgressState,
    expired_only: bool,
    where: str = "--from",
) -> list[ProgressState]:
    """The states to take items from; a CliError for any move the operator must not make.

    `where` names the states in a refusal: the option, or the group they came from.
    """
    check_target(to_state)
    if to_state == S.ENQUEUED:
        wrong = [s for s in from_states if s not in RECHECK_FROM and s != to_state]
        if wrong:
            raise CliError(
                f"--to 3 from {_listed(wrong)}: those images' messages "
                "were not published, so a check would prove nothing; use --to 0",
                USAGE,
            )
    held = [s for s in from_states if s.is_claim]
    if held and not expired_only:
        raise CliError(
            f"{where} {_listed(held)}: a running worker holds those items; "
            "add --expired-only to take only those whose claim lease has run out",
            USAGE,
        )
    sources = [s for s in from_states if s != to_state]
    if not sources:
        raise CliError(f"{where} {_listed(from_states)}: only the --to state, nothing to do", USAGE)
    return sources


def check_group(
    group: groups.Group,
    from_states: tuple[ProgressState, ...] | None,
    to_state: ProgressState,
    expired_only: bool,
) -> ProgressState:
    """The group's state, if its items may be moved as asked; a CliError otherwise."""
    state = ProgressState(group.state)
    if from_states is not None and state not in from_states:
        raise CliError(
            f"group {group.id} is in state {int(state)}, which --from {_listed(from_states)} "
            "does not name: nothing changed",
            USAGE,
        )
    if state == S.TOO_BIG and from_states is None:
        raise CliError(
            f"group {group.id} is in {state_name(int(state))}: their messages were over the "
            "size limit and will be again unless the limit was raised or the images changed; "
            "nothing changed. To move them anyway, add --from 9001",
            USAGE,
        )
    check_states((state,), to_state, expired_only, where=f"group {group.id} is in")
    return state


def run(args: argparse.Namespace) -> int:
    with pipe_guard():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    listed, from_states, to_state = _parse(args)
    sources = None
    if args.reason is None:
        sources = check_states(from_states, to_state, args.expired_only)
    cutoff = utc_now() - timedelta(seconds=args.lease_seconds) if args.expired_only else None
    target = state_name(int(to_state))

    with open_table(args) as table:
        group = None
        if sources is not None:
            counts = table.counts(sources)
            total = sum(counts.values())
            for state, n in counts.items():
                print(f"{n:>12,} in {state_name(int(state))}")
        else:
            group = _announce_group(table, args.reason, listed)
            sources = [check_group(group, from_states, to_state, args.expired_only)]
            total = group.count
        if cutoff is not None:
            print(f"(only those unchanged for {args.lease_seconds:,} s will move)")
        if args.dry_run:
            print(f"would move {total:,} item(s) to {target} (dry run: nothing changed)")
            return OK
        if total == 0:
            print("nothing to move")
            return OK
        if total > CONFIRM_ABOVE or (args.stage or "").upper() == "PROD":
            confirm_typed(
                args.stage or args.table,
                f"move {total:,} item(s) to {target} in {args.table}?",
                args.yes,
            )
        moved = _move(table, sources, to_state, total, group=group, cutoff=cutoff)
    print(f"moved {moved:,} item(s) to {target}")
    if moved < total:
        print(f"({total - moved:,} had moved on meanwhile, or were not old enough, and stayed)")
    return OK


def _parse(args: argparse.Namespace):
    """(--state, --from, --to) parsed; a CliError, before any AWS call, for what cannot go."""
    listed = groups.given_states(args)
    if args.reason is None and listed is not None:
        raise CliError(
            "--state goes with --reason N (the states `reingest failures` numbered its "
            "groups over); to choose the states to move, use --from",
            USAGE,
        )
    if args.reason is None and args.from_states is None:
        raise CliError(
            "--from STATE[,STATE...] is required (or --reason ID, a group that "
            "`reingest failures` lists)",
            USAGE,
        )
    try:
        from_states = parse_states(args.from_states) if args.from_states else None
        to_state = ProgressState.parse(args.to_state)
    except ValueError as error:
        raise CliError(f"--from/--to: {error}", USAGE) from None
    check_target(to_state)
    groups.check_reference(args.reason, listed)
    return listed, from_states, to_state


def _announce_group(table, reference: groups.Reference, listed) -> groups.Group:
    """The group `reference` names, its reason and count printed before anything moves."""
    failures, group = groups.find_group(table, reference, listed)
    if isinstance(reference, int):
        print(f"group {reference} of the groups in states {failures.listed} is {group.id}")
    print(f"{group.count:>12,} in group {group.id}, {state_name(group.state)}: {group.reason}")
    return group


def _listed(states) -> str:
    return ",".join(str(int(s)) for s in states)


def _move(table, sources, to_state, total: int, *, group, cutoff) -> int:
    """Move the items; on a failure or Ctrl-C, say how many had moved, then re-raise."""
    progress = Progress(total, "resetting")
    moved = 0

    def count_moved(n: int) -> None:
        nonlocal moved
        moved += n

    try:
        if group is None:
            table.reset(
                sources,
                to_state,
                on_progress=progress.advance,
                changed_before=cutoff,
                on_moved=count_moved,
            )
        else:
            before = None if cutoff is None else format_instant(cutoff)
            rows = (
                (r.id, r.state, r.changed_at)
                for r in groups.rows_of_group(table, group)
                if before is None or r.changed_at < before
            )
            table.reset_items(rows, to_state, progress.advance, on_moved=count_moved)
    except BaseException as error:
        progress.close()
        what = "interrupted" if isinstance(error, KeyboardInterrupt) else "stopped by an error"
        print(f"{what}: moved {moved:,} item(s) to {state_name(int(to_state))} before that")
        raise
    progress.close()
    return moved
