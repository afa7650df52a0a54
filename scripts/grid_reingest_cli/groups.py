"""Failure groups, as `failures` lists them and `reset` and `failures --export` take them.

A group is the items of one state whose last error normalises to one reason
(`domain/reasons.py`). Its id names it in every run (`8-1f3a9c0d`); its number
is only its rank among the groups of the states listed, so a number is taken
only with the exact --state list it was counted over, and even then it moves
as items do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from grid_reingest.adapters.dynamodb.scans import Row
from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest.domain.ids import RESERVED_PREFIX, is_reserved
from grid_reingest.domain.reasons import group_id, group_id_state, normalise
from grid_reingest.domain.states import ProgressState, parse_states
from grid_reingest_cli.errors import USAGE, CliError
from grid_reingest_cli.progress import Progress

FAILURE_STATES = (
    ProgressState.KNOWN_ERROR,
    ProgressState.NOT_FOUND_IN_MEDIA_API,
    ProgressState.UNKNOWN_ERROR,
    ProgressState.TOO_BIG,
)
DEFAULT_STATES = ",".join(str(int(s)) for s in FAILURE_STATES)
EXAMPLES = 3
# Groups named in a refusal: enough to find the one meant, not a screenful.
MAX_NAMED = 20

Reference = int | str  # a group's number (1-based) or its id


@dataclass
class Group:
    """The items of one state that share one normalised reason."""

    state: int
    reason: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return group_id(self.state, self.reason)

    def line(self) -> str:
        """e.g. '8-1f3a9c0d            4 in 8     leases: HTTP 500'."""
        return f"{self.id:<14} {self.count:>10,} in {self.state:<4}  {self.reason}"


@dataclass
class Failures:
    """The groups of `states`, largest first; `reserved`: items left out (reserved ids)."""

    states: tuple[int, ...]
    total: int
    groups: list[Group]
    reserved: int = 0

    @property
    def listed(self) -> str:
        return ",".join(str(int(s)) for s in self.states)

    def as_json(self, groups: Iterable[Group] | None = None) -> dict:
        return {
            "total": self.total,
            "groups": [
                {
                    "id": g.id,
                    "reason": g.reason,
                    "states": [g.state],
                    "count": g.count,
                    "share": round(g.count / self.total, 4) if self.total else 0,
                    "examples": g.examples,
                }
                for g in (self.groups if groups is None else groups)
            ],
        }

    def find(self, reference: Reference) -> Group:
        """The group `reference` names; a CliError naming the groups there are if none."""
        if isinstance(reference, int):
            if 1 <= reference <= len(self.groups):
                return self.groups[reference - 1]
            why = f"there are {len(self.groups)} group(s) in states {self.listed}"
        else:
            found = [g for g in self.groups if g.id == reference]
            if len(found) == 1:
                return found[0]
            if found:
                # Two reasons with one digest: refuse rather than move either.
                raise CliError(
                    f"--reason {reference}: {len(found)} groups share that id; export them "
                    "by state with `reingest scan-statuses --with-errors` instead",
                    USAGE,
                )
            why = (
                f"no group in states {self.listed} has that id (its items may have moved "
                "on since it was listed)"
            )
        raise CliError(f"--reason {reference}: {why}{self._named()}", USAGE)

    def _named(self) -> str:
        if not self.groups:
            return "; there are no failed items there"
        lines = [f"    {g.line()}" for g in self.groups[:MAX_NAMED]]
        if len(self.groups) > MAX_NAMED:
            lines.append(f"    ... and {len(self.groups) - MAX_NAMED} more: reingest failures")
        return "; the groups there are:\n" + "\n".join(lines)


def parse_reference(text: str) -> Reference:
    """argparse type for --reason: a group id ('8-1f3a9c0d') or a group number."""
    if text.strip().isdigit():
        number = int(text)
        if number < 1:
            raise argparse.ArgumentTypeError(f"{text}: group numbers start at 1")
        return number
    state = group_id_state(text)
    if state is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a group id (like 8-1f3a9c0d, as `reingest failures` lists them)"
        )
    try:
        ProgressState(state)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: {state} is not a progress state") from None
    return text.strip().lower()


def add_state_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """--state: the states whose failures are grouped (None when not given)."""
    parser.add_argument(
        "--state", dest="failure_states", metavar="STATE[,STATE...]", help=help_text
    )


def given_states(args: argparse.Namespace) -> tuple[ProgressState, ...] | None:
    """The --state list, parsed; None when the option was not given."""
    if args.failure_states is None:
        return None
    try:
        return parse_states(args.failure_states)
    except ValueError as error:
        raise CliError(f"--state: {error}", USAGE) from None


def check_reference(reference: Reference | None, states: tuple[int, ...] | None) -> None:
    """Refuse, before any scan, a group number given without the states it counts over."""
    if isinstance(reference, int) and states is None:
        raise CliError(
            f"--reason {reference}: a group number is only a rank among the groups of the "
            "states listed: it names another group over other states, or once items have "
            "moved. Pass the group's id as `reingest failures` lists it (e.g. --reason "
            "8-1f3a9c0d), or the number with the --state list `failures` used (its default: "
            f"--state {DEFAULT_STATES})",
            USAGE,
        )


def find_group(
    table: OperatorTable,
    reference: Reference,
    states: tuple[int, ...] | None,
    segments: int = 8,
) -> tuple[Failures, Group]:
    """The groups scanned and the one `reference` names.

    A number counts over `states` exactly (check_reference first); an id is
    looked for in `states` (default FAILURE_STATES) and the state it names.
    """
    check_reference(reference, states)
    scope = tuple(states or FAILURE_STATES)
    named = group_id_state(reference) if isinstance(reference, str) else None
    if named is not None:
        scope = tuple(dict.fromkeys([*scope, named]))
    failures = group_failures(table, scope, segments)
    return failures, failures.find(reference)


def group_failures(table: OperatorTable, states: Iterable[int], segments: int = 8) -> Failures:
    """Every item in `states`, grouped by state and normalised last error, largest first."""
    states = tuple(int(s) for s in states)
    groups: dict[tuple[int, str], Group] = {}
    total = reserved = 0
    progress = Progress(None, "scanning")
    try:
        for page in table.scan_rows(states, segments=segments):
            for row in page:
                if is_reserved(row.id):
                    reserved += 1
                    continue
                key = (row.state, normalise(row.last_error))
                group = groups.get(key)
                if group is None:
                    group = groups[key] = Group(*key)
                group.count += 1
                total += 1
                _keep_example(group.examples, row.id)
            progress.advance(len(page))
    finally:
        progress.close()
    ordered = sorted(groups.values(), key=lambda g: (-g.count, g.reason, g.state))
    for group in ordered:
        group.examples.sort()
    failures = Failures(states, total, ordered, reserved)
    if reserved:
        print(
            f"note: {reserved:,} item(s) in states {failures.listed} have a reserved id "
            f"(starting with {RESERVED_PREFIX!r}, as the control item's): they are not "
            "images, and no group holds them",
            file=sys.stderr,
        )
    return failures


def _keep_example(examples: list[str], image_id: str) -> None:
    """Keep the EXAMPLES smallest ids: the same examples whatever order the scan reads."""
    if len(examples) < EXAMPLES:
        examples.append(image_id)
        return
    largest = max(examples)
    if image_id < largest:
        examples[examples.index(largest)] = image_id


def rows_of_group(table: OperatorTable, group: Group, segments: int = 8) -> Iterator[Row]:
    """The items of `group` as they are now, by a new scan of its state."""
    for page in table.scan_rows([group.state], segments=segments):
        for row in page:
            if not is_reserved(row.id) and normalise(row.last_error) == group.reason:
                yield row
