"""Passes: what kind, where its items start, when it ended and what it came to (pure).

docs/state-table.md ("Passes") is the design: one pass at a time; a check-first
pass uploads its ids at 3 for batch-check, and sends back to batch-index (0)
only those media-api lacks; a new pass re-arms ids a finished pass left in a
final state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Any

from grid_reingest.domain.claims import Claim, Transition
from grid_reingest.domain.isotime import format_instant, parse_instant
from grid_reingest.domain.states import ProgressState

# Where a pass leaves an image for good.
FINAL_STATES = frozenset(
    {
        ProgressState.NOT_FOUND,
        ProgressState.KNOWN_ERROR,
        ProgressState.VERIFIED,
        ProgressState.NOT_FOUND_IN_MEDIA_API,
        ProgressState.UNKNOWN_ERROR,
        ProgressState.TOO_BIG,
    }
)
# Where a pass still has work: while any item is in one of these, the pass runs.
WORKING_STATES = (
    ProgressState.NOT_STARTED,
    ProgressState.IN_PROGRESS,
    ProgressState.ENQUEUED,
    ProgressState.LOOKING_FOR_IMAGE,
)
FAILED_STATES = frozenset(FINAL_STATES - {ProgressState.VERIFIED})
# A check-first item's state name while it waits for batch-check.
CHECK_FIRST_LABEL = "waiting for a check in media-api"
# A check-first item media-api lacks, back for batch-index.
MISSING_LABEL = "missing in media-api: to reingest"
# Its last_error: why it was sent back (one failure group, should it fail later).
MISSING_ERROR = "media-api: HTTP 404: missing before re-projection (check-first pass)"


class Kind(Enum):
    """How a pass treats its ids."""

    FULL = "full"  # re-project every id, then check it
    CHECK_FIRST = "check-first"  # check every id; re-project only those media-api lacks

    @property
    def start_state(self) -> ProgressState:
        """Where the pass's items are uploaded."""
        return ProgressState.ENQUEUED if self is Kind.CHECK_FIRST else ProgressState.NOT_STARTED


class Status(Enum):
    """Whether a pass still runs."""

    LOADING = "loading"  # its ids are still being listed and uploaded (the scheduled repair)
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(frozen=True)
class Arming:
    """How an upload arms its items: the pass (None: none recorded), where they start, whether
    they are checked first; and whether ids a finished pass left final are re-armed."""

    pass_id: str | None = None
    kind: Kind = Kind.FULL
    rearm: bool = False

    @property
    def state(self) -> ProgressState:
        """Where the items start."""
        return self.kind.start_state


def pass_id(started: datetime) -> str:
    """A pass's id: when it started, to the second, UTC (`20261205T120000Z`)."""
    return started.strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class Report:
    """What a pass came to."""

    states: dict[int, int]  # items per state
    present: int = 0  # check-first: media-api had it, never re-projected
    repaired: int = 0  # check-first: re-projected, and media-api has it now
    groups: tuple[dict[str, Any], ...] = ()  # the failure groups, largest first
    seconds: float = 0.0  # from the start to the end
    gb_seconds: float = 0.0  # the workers' Lambda time so far (their cost: docs/state-table.md)

    @property
    def failed(self) -> int:
        """Items the pass left in a failure state."""
        return sum(n for s, n in self.states.items() if s in FAILED_STATES)

    @property
    def total(self) -> int:
        """Items the table holds."""
        return sum(self.states.values())

    def to_json(self) -> dict[str, Any]:
        """The report as the pass record and the topic carry it."""
        return {
            "states": {str(s): n for s, n in sorted(self.states.items())},
            "present": self.present,
            "repaired": self.repaired,
            "failed": self.failed,
            "groups": list(self.groups),
            "seconds": round(self.seconds, 1),
            "gbSeconds": round(self.gb_seconds, 1),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        """Read back what to_json wrote."""
        return cls(
            states={int(s): int(n) for s, n in data.get("states", {}).items()},
            present=int(data.get("present", 0)),
            repaired=int(data.get("repaired", 0)),
            groups=tuple(data.get("groups", ())),
            seconds=float(data.get("seconds", 0.0)),
            gb_seconds=float(data.get("gbSeconds", 0.0)),
        )

    def text(self, kind: Kind) -> str:
        """The report in an operator's words."""
        lines = [
            f"{self.total} images; {self.seconds / 60:.0f} min; the workers' Lambda time so far "
            f"{self.gb_seconds:,.0f} GB-s"
        ]
        if kind is Kind.CHECK_FIRST:
            lines.append(
                f"present in media-api: {self.present}; repaired: {self.repaired}; "
                f"failed: {self.failed}"
            )
        states = ", ".join(
            f"{n} in {s} ({ProgressState(s).label})" for s, n in sorted(self.states.items()) if n
        )
        lines.append(f"states: {states or 'none'}")
        for group in self.groups[:10]:
            lines.append(f"  {group.get('id')}: {group.get('count')} x {group.get('reason')}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Pass:
    """One pass, as its record holds it."""

    id: str
    kind: Kind
    source: str
    started_at: str  # ISO-8601 UTC
    started_by: str  # "operator" or "schedule"
    status: Status = Status.RUNNING
    ended_at: str | None = None
    topic: str | None = None  # where the report goes (the scheduled repair's topic)
    report: Report | None = field(default=None, compare=False)
    # While loading: the parts of the source still to list (hex prefixes, inventory files),
    # and the ids loaded so far.
    remaining: tuple[str, ...] = ()
    loaded: int = 0
    updated_at: str | None = None  # when the record last moved (a loading part done)
    # Check-first items verified so far, counted as batch-check verifies them (kept on the
    # record apart from its JSON: docs/state-table.md, "Counting present and repaired").
    present: int = field(default=0, compare=False)
    repaired: int = field(default=0, compare=False)
    # The workers' Lambda time while the pass ran, in GB-seconds (ADDed per invocation).
    gb_seconds: float = field(default=0.0, compare=False)

    @classmethod
    def start(
        cls,
        kind: Kind,
        source: str,
        now: datetime,
        *,
        started_by: str = "operator",
        topic: str | None = None,
    ) -> Pass:
        """A new pass, starting now."""
        return cls(pass_id(now), kind, source, format_instant(now), started_by, topic=topic)

    def finished(self, report: Report, now: datetime) -> Pass:
        """This pass, ended now with `report`."""
        return replace(self, status=Status.FINISHED, ended_at=format_instant(now), report=report)

    def quiet_for(self, now: datetime) -> float:
        """Seconds since the record last moved."""
        return (now - parse_instant(self.updated_at or self.started_at)).total_seconds()

    def seconds(self, now: datetime) -> float:
        """How long the pass has run, or ran."""
        end = parse_instant(self.ended_at) if self.ended_at else now
        return (end - parse_instant(self.started_at)).total_seconds()

    def to_json(self) -> dict[str, Any]:
        """The record's attributes."""
        data: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind.value,
            "source": self.source,
            "startedAt": self.started_at,
            "startedBy": self.started_by,
            "status": self.status.value,
        }
        if self.ended_at:
            data["endedAt"] = self.ended_at
        if self.topic:
            data["topic"] = self.topic
        if self.report is not None:
            data["report"] = self.report.to_json()
        if self.remaining:
            data["remaining"] = list(self.remaining)
        if self.loaded:
            data["loaded"] = self.loaded
        if self.updated_at:
            data["updatedAt"] = self.updated_at
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pass:
        """Read back what to_json wrote; ValueError naming what is wrong."""
        try:
            report = data.get("report")
            return cls(
                id=str(data["id"]),
                kind=Kind(data["kind"]),
                source=str(data["source"]),
                started_at=str(data["startedAt"]),
                started_by=str(data.get("startedBy", "operator")),
                status=Status(data.get("status", "running")),
                ended_at=data.get("endedAt"),
                topic=data.get("topic"),
                report=Report.from_json(report) if isinstance(report, dict) else None,
                remaining=tuple(str(u) for u in data.get("remaining", ())),
                loaded=int(data.get("loaded", 0)),
                updated_at=data.get("updatedAt"),
            )
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(f"malformed pass record ({error!r}): {str(data)[:200]}") from None


def rearms(state: ProgressState, armed_by: str | None, new_pass: str) -> bool:
    """Whether starting `new_pass` re-arms an item in `state`, armed by `armed_by`: only one a
    finished pass left in a final state (docs/state-table.md)."""
    return state in FINAL_STATES and armed_by != new_pass


def missing_transition(claim: Claim, held_in: ProgressState, invocation: str) -> Transition:
    """A check-first item media-api lacks: back to 0 for batch-index, as a fresh item (no
    attempt, no overload answer), `check_first` removed and `reprojected` set."""
    return Transition(
        claim.id,
        held_in,
        ProgressState.NOT_STARTED,
        invocation,
        attempts=0,
        error=MISSING_ERROR,
        label=MISSING_LABEL,
        overloads=0,
        reproject=True,
    )


@dataclass(frozen=True)
class Verified:
    """Check-first items of one pass that reached 6: present (never re-projected) and
    repaired (re-projected, then found)."""

    pass_id: str
    present: int = 0
    repaired: int = 0


def verified_counts(claims: list[Claim]) -> list[Verified]:
    """The verified claims' counts by pass (items of no pass, or of a full pass, count
    nowhere)."""
    found: dict[str, tuple[int, int]] = {}
    for claim in claims:
        if claim.pass_id is None or not (claim.check_first or claim.reprojected):
            continue
        present, repaired = found.get(claim.pass_id, (0, 0))
        found[claim.pass_id] = (present + int(claim.check_first), repaired + int(claim.reprojected))
    return [Verified(p, present, repaired) for p, (present, repaired) in found.items()]
