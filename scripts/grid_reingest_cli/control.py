"""reingest pause / resume / tune: the live knobs of a pass, in the state table's control item.

Running workers read the control item before each claim, so a change takes
effect within a minute, without a redeploy.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace

from grid_reingest import settings
from grid_reingest.adapters.dynamodb.control import ControlTable
from grid_reingest.domain.control import Control, Knobs, PaceState
from grid_reingest_cli.common import (
    OK,
    USAGE,
    CliError,
    add_aws_options,
    add_output_options,
    open_table,
    wants_json,
)

PAUSE = """\
Pause the pass: running workers stop claiming within a minute, give back what
they have not started, and finish what they hold. Nothing is lost and the
schedules stay as they are; `reingest resume` carries on where it stopped.
"""
RESUME = """\
Resume a paused pass: workers claim again from their next run (within a minute).
"""
TUNE = """\
Set ceilings the pace controller stays under, from its next decision (within a
minute): --max-in-flight (images being worked on at once) and --max-rate
(images started a minute, e.g. 600/min, 10/s or 36000/h). --clear lifts a
ceiling (the deployed settings apply again). With no option, show the knobs and
the controller's current limit.
"""

WITHIN = "within a minute"
RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|min|m|h|hour))?\s*", re.IGNORECASE)
PER_MINUTE = {None: 1, "min": 1, "m": 1, "s": 60, "sec": 60, "h": 1 / 60, "hour": 1 / 60}
# Above these a ceiling is a typo, not an intent: batch-index never has more than its
# MAX_IN_FLIGHT (1..1024) in flight, and a Grid takes ~1,200 images a minute on three
# image-loaders (guardian/grid #3501): 60,000 a minute is fifty such Grids.
MAX_IN_FLIGHT = int(settings.MAX_IN_FLIGHT.allowed.split("..")[1])
MAX_RATE_PER_MINUTE = 60_000


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    for name, text, summary in (
        ("pause", PAUSE, "stop taking work (workers finish what they hold)"),
        ("resume", RESUME, "take work again after a pause"),
        ("tune", TUNE, "set or clear the pace's ceilings"),
    ):
        parser = subparsers.add_parser(
            name,
            help=summary,
            description=text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=f"example:\n  reingest {name} --stage PROD"
            + (" --max-in-flight 32 --max-rate 600/min" if name == "tune" else ""),
        )
        if name == "tune":
            parser.add_argument(
                "--max-in-flight", type=_in_flight, metavar="N", help="images at once, 1 or more"
            )
            parser.add_argument(
                "--max-rate", type=_rate, metavar="N/min", help="images started a minute"
            )
            parser.add_argument(
                "--clear",
                action="append",
                choices=("max-in-flight", "max-rate", "all"),
                help="lift a ceiling (may be repeated)",
            )
        add_output_options(parser)
        add_aws_options(parser, parallel=1, parallel_help="connections to DynamoDB")
        parser.set_defaults(run=run, action=name)


def run(args: argparse.Namespace) -> int:
    with open_table(args) as table:
        store = ControlTable(table.name, table.client)
        before = store.read()
        wanted = _wanted(args, before.knobs)
        after = before if wanted == before.knobs else store.set_knobs(wanted, before.knobs)
    changes = describe_changes(before.knobs, after.knobs)
    if wants_json(args):
        print(json.dumps(as_json(after, changes, args.table), indent=2))
        return OK
    bare = args.action == "tune" and not (args.max_in_flight or args.max_rate or args.clear)
    if not bare:
        for line in changes or ["no change"]:
            print(line)
        print(effect(args.action, before.knobs, after.knobs, _which(args)))
    print(knobs_line(after.knobs))
    print(pace_line(after))
    return OK


def _wanted(args: argparse.Namespace, knobs: Knobs) -> Knobs:
    if args.action == "pause":
        return replace(knobs, paused=True)
    if args.action == "resume":
        return replace(knobs, paused=False)
    cleared = set(args.clear or ())
    both = "all" in cleared
    for option, name in (("max_in_flight", "max-in-flight"), ("max_rate", "max-rate")):
        if getattr(args, option) is not None and (name in cleared or both):
            raise CliError(f"--{name} and --clear {name}: pick one", USAGE)
    in_flight, rate = knobs.max_in_flight, knobs.max_rate_per_minute
    if both or "max-in-flight" in cleared:
        in_flight = None
    if both or "max-rate" in cleared:
        rate = None
    if args.max_in_flight is not None:
        in_flight = args.max_in_flight
    if args.max_rate is not None:
        rate = args.max_rate
    return replace(knobs, max_in_flight=in_flight, max_rate_per_minute=rate)


def _which(args: argparse.Namespace) -> str:
    """ " --stage S" or " --table T", as the command was given."""
    return f" --stage {args.stage}" if args.stage else f" --table {args.table}"


def describe_changes(before: Knobs, after: Knobs) -> list[str]:
    """One line per knob that changed, e.g. 'max in flight: none -> 32'."""
    lines = []
    for label, old, new in (
        ("paused", before.paused, after.paused),
        ("max in flight", before.max_in_flight, after.max_in_flight),
        (
            "max rate",
            _per_minute(before.max_rate_per_minute),
            _per_minute(after.max_rate_per_minute),
        ),
    ):
        if old != new:
            lines.append(f"{label}: {_shown(old)} -> {_shown(new)}")
    return lines


def effect(action: str, before: Knobs, after: Knobs, which: str = "") -> str:
    """What the workers will do about it, in the operator's words (`which`: the options that
    name the table, for the command to run next)."""
    if action == "pause":
        if before.paused:
            return f"already paused: workers take no work; `reingest resume{which}` to carry on"
        return (
            f"running workers stop claiming {WITHIN}, give back what they have not started, "
            f"finish what they hold; `reingest resume{which}` to carry on"
        )
    if action == "resume":
        if not before.paused:
            return "not paused: workers take work whenever their schedule is on"
        return f"workers claim again from their next run ({WITHIN}) if their schedule is on"
    if before == after:
        return "ceilings unchanged"
    return f"the controller stays under these ceilings from its next decision ({WITHIN})"


def knobs_line(knobs: Knobs) -> str:
    """The operator's knobs in one line: paused or running, and the ceilings."""
    ceilings = [
        f"max {knobs.max_in_flight:,} in flight" if knobs.max_in_flight else "",
        f"max {knobs.max_rate_per_minute:,}/min" if knobs.max_rate_per_minute else "",
    ]
    shown = ", ".join(c for c in ceilings if c) or "none (the deployed settings apply)"
    return f"knobs: {'PAUSED' if knobs.paused else 'running'}; ceilings: {shown}"


def pace_line(control: Control, previous: PaceState | None = None) -> str:
    """The controller's current limit and why, as the workers last wrote it; with `previous`
    (the state a look before), how the limit moved since, the reason being only the last
    of the decisions made meanwhile (a limit raised twice and cut once reads "limit cut")."""
    pace = control.pace
    if pace is None:
        return "controller: no decision recorded yet (running workers write it)"
    rate = "no rate limit" if pace.rate_per_minute is None else f"{pace.rate_per_minute:,.0f}/min"
    when = f" at {pace.decided_at}" if pace.decided_at else ""
    moved, why = "", ""
    if previous is not None and round(previous.limit) != round(pace.limit):
        way = "up" if pace.limit > previous.limit else "down"
        moved = f" ({way} from {previous.limit:,.0f} a look before)"
        why = "last decision: "
    return f"controller: {pace.limit:,.0f} in flight{moved}, {rate} — {why}{pace.reason}{when}"


def as_json(control: Control, changes: list[str], table: str) -> dict:
    """The control item as `--output json` prints it."""
    return {"table": table, "changes": changes, **control_json(control, history=True)}


def control_json(control: Control, *, history: bool) -> dict:
    """The knobs and the controller's state as JSON (`tune` and `watch` alike)."""
    pace = control.pace
    controller: dict[str, object] | None = None
    if pace is not None:
        controller = {
            "limit": pace.limit,
            "ratePerMinute": pace.rate_per_minute,
            "reason": pace.reason,
            "decidedAt": pace.decided_at,
        }
        if history:
            controller["history"] = list(pace.history)
    return {
        "knobs": {
            "paused": control.knobs.paused,
            "maxInFlight": control.knobs.max_in_flight,
            "maxRatePerMinute": control.knobs.max_rate_per_minute,
        },
        "controller": controller,
    }


def _in_flight(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_IN_FLIGHT:
        raise argparse.ArgumentTypeError(f"{value} must be between 1 and {MAX_IN_FLIGHT:,}")
    return value


def _rate(text: str) -> int:
    match = RATE.fullmatch(text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rate: write e.g. 600/min, 10/s or 36000/h"
        )
    unit = match.group(2).lower() if match.group(2) else None
    value = float(match.group(1)) * PER_MINUTE[unit]
    if not 1 <= value <= MAX_RATE_PER_MINUTE:
        raise argparse.ArgumentTypeError(
            f"{text} is {value:,.2f}/min: must be between 1/min and {MAX_RATE_PER_MINUTE:,}/min"
        )
    return round(value)


def _per_minute(value: int | None) -> str | None:
    return None if value is None else f"{value:,}/min"


def _shown(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
