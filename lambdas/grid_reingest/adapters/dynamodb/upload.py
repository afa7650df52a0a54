"""Uploading ids to the state table: every write conditional, so progress is never lost.

An id already in the table keeps its item (and its state) unless the operator
explicitly resets existing items, and even then never an item a worker holds.
New ids go in 25 at a time as PartiQL `INSERT`s (BatchExecuteStatement): each
one is refused on its own, `DuplicateItem`, when its key exists, so a batch
never overwrites an item whoever wrote it and whenever. Bulk work runs in
parallel batches with bounded queues, so that tens of millions of ids pass
through in bounded memory.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from grid_reingest.adapters.dynamodb.claims import ClaimTable
from grid_reingest.adapters.dynamodb.schema import (
    BATCH_GET_MAX,
    BATCH_WRITE_MAX,
    CHANGED_AT,
    ID,
    MAX_ROUNDS_WITHOUT_PROGRESS,
    PASS,
    STATE,
    STATE_SHARD,
    StateTableError,
    condition_failed,
    fresh_item,
)
from grid_reingest.domain.backoff import sleep_before_retry
from grid_reingest.domain.isotime import format_instant
from grid_reingest.domain.passes import Arming, rearms
from grid_reingest.domain.states import ProgressState

_CLAIM_STATES = tuple(s for s in ProgressState if s.is_claim)
# A new item's attributes that differ from id to id: the INSERT statement's parameters,
# in order. The others are the same for every new item: literals in the statement, so
# that botocore has less to validate and serialise in each call.
_INSERT_PARAMETERS = (ID, STATE_SHARD, CHANGED_AT)
# BatchExecuteStatement answers each statement on its own (Responses[i].Error.Code).
# These are DynamoDB running short of capacity for that statement: send it again.
_INSERT_AGAIN = frozenset(
    {
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
        "InternalServerError",
        "TransactionConflict",
    }
)
# The key exists (INSERT never overwrites): read the item to see whose it is.
_ALREADY_THERE = frozenset({"DuplicateItem", "ConditionalCheckFailed"})


@dataclass
class WriteReport:
    """What a bulk upload did so far; filled in as batches finish, so an interrupted upload
    still says what it wrote."""

    written: int = 0
    # Items already in the table and left as they were, by state.
    kept: Counter[int] = field(default_factory=Counter)
    # Items put back at state 0 (reset_existing), by the state they were in.
    reset: Counter[int] = field(default_factory=Counter)
    # Items a worker holds (claim state, lease running): never reset.
    held: int = 0
    # Ids this run had already written: repeats in the input beyond the dedup window.
    repeated: int = 0
    # Items a finished pass left final, armed again for the new pass, by the state they were in.
    rearmed: Counter[int] = field(default_factory=Counter)

    @property
    def already_present(self) -> int:
        """Ids that were in the table before this run."""
        return (
            sum(self.kept.values())
            + sum(self.reset.values())
            + sum(self.rearmed.values())
            + self.held
        )

    @property
    def done(self) -> int:
        """Ids dealt with, whatever happened to them."""
        return self.written + self.already_present + self.repeated

    def add(self, other: WriteReport) -> None:
        self.written += other.written
        self.kept.update(other.kept)
        self.reset.update(other.reset)
        self.held += other.held
        self.repeated += other.repeated
        self.rearmed.update(other.rearmed)


class UploadTable(ClaimTable):
    """The state table as `upload-ids` uses it."""

    def put_new(
        self,
        ids: Iterable[str],
        *,
        reset_existing: bool = False,
        lease_seconds: int = 1200,
        on_progress: Callable[[int], None] = lambda n: None,
        report: WriteReport | None = None,
        arming: Arming | None = None,
    ) -> WriteReport:
        """Store each id at state 0 unless it is already in the table; every id is dealt with
        or this raises.

        Batches of 100 ids, many in flight: one read of the batch, then its new
        ids as PartiQL `INSERT`s, 25 a call. An `INSERT` never replaces an item,
        so an id that appears between the read and the write (another upload,
        then a worker's claim) keeps its state, attempts and error, and is counted
        as kept. While the batches before found only new ids, a batch skips the
        read and inserts at once: an id found there is then read on its own. With
        `reset_existing`, existing items are put back at 0 too —
        except those a worker holds (a claim state younger than `lease_seconds`),
        and each only if it is still as it was read. `report` (a new one by
        default) is filled in as batches finish, also when this raises: pass one
        to know what was done before a failure. `arming`: the pass the new items belong to,
        where they start (0, or 3 to be checked first), and whether items a finished pass
        left final are armed again for it (docs/state-table.md, "Passes").
        """
        arming = arming or Arming()
        report = report if report is not None else WriteReport()
        started = self._now()
        cutoff = format_instant(self._clock() - timedelta(seconds=lease_seconds))

        # Whether the last batch to end found ids already there (a hint: batches in
        # flight may race to set it). A file new to the table then costs one read per
        # 100 ids less; one already uploaded costs no writes.
        read_first = [True]

        def store(batch: list[str]) -> tuple[WriteReport, Exception | None]:
            # A batch that fails half way still tells what it had done.
            part = WriteReport()
            try:
                read_first[0] = self._store_batch(
                    batch,
                    reset_existing,
                    started,
                    cutoff,
                    part,
                    arming=arming,
                    read_first=read_first[0],
                )
            except Exception as error:
                read_first[0] = True
                return part, error
            return part, None

        def record(result: tuple[WriteReport, Exception | None]) -> None:
            part, error = result
            report.add(part)
            on_progress(part.done)
            if error is not None:
                raise error

        self._run_bounded(store, _chunks(ids, BATCH_GET_MAX), record)
        return report

    def _store_batch(
        self,
        ids: list[str],
        reset_existing: bool,
        started: str,
        cutoff: str,
        out: WriteReport,
        *,
        arming: Arming,
        read_first: bool = True,
    ) -> bool:
        """Deal with one batch of ids: those already there kept (or reset), the others
        inserted; counts what happened to each in `out`. Whether any was already there.

        With `read_first`, one read of the batch finds those already there before
        any write; without it, they are found by their refused INSERTs.
        """
        unique = list(dict.fromkeys(ids))
        out.repeated += len(ids) - len(unique)
        found = self._read_items(unique) if read_first else {}
        decide = functools.partial(
            self._store_one,
            reset_existing=reset_existing,
            started=started,
            cutoff=cutoff,
            out=out,
            arming=arming,
        )
        for image_id, item in found.items():
            decide(image_id, item)
        met = self._insert_new([i for i in unique if i not in found], decide, out, arming)
        return bool(found) or met

    def _insert_new(
        self,
        ids: list[str],
        decide: Callable[[str, dict[str, Any]], None],
        out: WriteReport,
        arming: Arming,
    ) -> bool:
        """Insert each id as a new item at the pass's start state, 25 a call; an id whose key
        exists by now is read and handed to `decide`. Statements DynamoDB had no capacity for are
        sent again after a backoff. Whether any key was there."""
        rounds_without_progress = 0
        met = False
        while ids:
            again, there = self._insert_once(ids, out, arming)
            met = met or bool(there)
            again += self._settle_existing(there, decide, out, arming)
            rounds_without_progress = 0 if len(again) < len(ids) else rounds_without_progress + 1
            ids = again
            if ids:
                self._give_up_if_stuck(rounds_without_progress, "BatchExecuteStatement")
                sleep_before_retry(rounds_without_progress)
        return met

    def _insert_once(
        self, ids: list[str], out: WriteReport, arming: Arming
    ) -> tuple[list[str], dict[str, str]]:
        """One INSERT of each id: the ids to send again, and those whose key exists (with
        the time of change this run sent for each)."""
        again: list[str] = []
        there: dict[str, str] = {}
        for chunk in _chunks(ids, BATCH_WRITE_MAX):
            items = [fresh_item(i, arming.state, self._now(), arming) for i in chunk]
            statement = self._insert_statement(arming)
            answers = self.client.batch_execute_statement(
                Statements=[
                    {
                        "Statement": statement,
                        "Parameters": [item[a] for a in _INSERT_PARAMETERS],
                    }
                    for item in items
                ]
            )["Responses"]
            refused: StateTableError | None = None
            for image_id, item, answer in zip(chunk, items, answers, strict=True):
                error = answer.get("Error")
                if error is None:
                    out.written += 1
                elif error.get("Code") in _INSERT_AGAIN:
                    again.append(image_id)
                elif error.get("Code") in _ALREADY_THERE:
                    there[image_id] = item[CHANGED_AT]["S"]
                else:
                    # Counted to the end first: the report must hold every id written.
                    refused = refused or self._refused(image_id, error)
            if refused is not None:
                raise refused
        return again, there

    def _settle_existing(
        self,
        there: dict[str, str],
        decide: Callable[[str, dict[str, Any]], None],
        out: WriteReport,
        arming: Arming,
    ) -> list[str]:
        """Read the ids an INSERT found there and decide for each; the ids to insert again."""
        if not there:
            return []
        again = []
        found = self._read_items(list(there))
        for image_id, sent in there.items():
            item = found.get(image_id)
            if item is None:
                again.append(image_id)  # refused as there, yet gone: insert it again
            elif _is_state(item, arming.state) and _changed_at(item) == sent:
                # Our own insert, applied though its answer was lost (botocore sent
                # the call again): written by this very statement.
                out.written += 1
            else:
                decide(image_id, item)
        return again

    @functools.cache  # noqa: B019 - one per table and arming, kept as long as the table
    def _insert_statement(self, arming: Arming) -> str:
        # Table names are [A-Za-z0-9_.-]: quoted as an identifier, nothing to escape.
        new = fresh_item("-", arming.state, "-", arming)
        item = ", ".join(
            f"'{a}': " + ("?" if a in _INSERT_PARAMETERS else _literal(value))
            for a, value in new.items()
        )
        return f'INSERT INTO "{self.name}" VALUE {{{item}}}'

    def _refused(self, image_id: str, error: dict[str, Any]) -> StateTableError:
        code, message = error.get("Code"), error.get("Message")
        hint = ""
        if code == "AccessDenied":
            hint = (
                "; uploads write new ids with PartiQL INSERT: the caller needs "
                "dynamodb:PartiQLInsert on the table (and BatchGetItem, PutItem)"
            )
        return StateTableError(
            f"DynamoDB refused to insert id {image_id!r} into {self.name!r}: {code}: {message}"
            f"{hint}; the ids written so far stay stored"
        )

    def _store_one(
        self,
        image_id: str,
        item: dict[str, Any] | None,
        *,
        reset_existing: bool,
        started: str,
        cutoff: str,
        out: WriteReport,
        arming: Arming,
    ) -> None:
        for _ in range(MAX_ROUNDS_WITHOUT_PROGRESS):
            action = self._upload_action(
                image_id,
                item,
                reset_existing=reset_existing,
                started=started,
                cutoff=cutoff,
                arming=arming,
            )
            if isinstance(action, str):
                _count(out, action, item)
                return
            outcome = action.pop("outcome", "reset")
            try:
                self.client.put_item(
                    TableName=self.name, ReturnValuesOnConditionCheckFailure="ALL_OLD", **action
                )
            except ClientError as error:
                if not condition_failed(error):
                    raise
                # The item is not as it was read: decide again from what it is now.
                item = error.response.get("Item")
                continue
            _count(out, "written" if item is None else outcome, item)
            return
        _count(out, "kept", item)  # it kept changing under us: leave it to whoever changes it

    def _upload_action(
        self,
        image_id: str,
        item: dict[str, Any] | None,
        *,
        reset_existing: bool,
        started: str,
        cutoff: str,
        arming: Arming,
    ) -> dict[str, Any] | str:
        """The conditional put for one id (with the outcome to count), or why it is left as
        it is."""
        if item is None:
            return {
                "Item": fresh_item(image_id, arming.state, self._now(), arming),
                "ConditionExpression": "attribute_not_exists(#id)",
                "ExpressionAttributeNames": {"#id": ID},
            }
        state = int(item[STATE]["N"]) if STATE in item else None
        changed_at = _changed_at(item)
        if state == arming.state and changed_at >= started:
            return "repeated"  # written by this very run, earlier in the input
        armed_by = item.get(PASS, {}).get("S")
        if state is None:
            return "kept"
        if (
            arming.rearm
            and arming.pass_id
            and rearms(ProgressState(state), armed_by, arming.pass_id)
        ):
            outcome = "rearmed"  # a finished pass left it final: the new pass takes it again
        elif not reset_existing:
            return "kept"
        elif state in _CLAIM_STATES and changed_at >= cutoff:
            return "held"
        else:
            outcome = "reset"
        return {
            "Item": fresh_item(image_id, arming.state, self._now(), arming),
            "ConditionExpression": "#state = :state AND #changed = :changed",
            "ExpressionAttributeNames": {"#state": STATE, "#changed": CHANGED_AT},
            "ExpressionAttributeValues": {":state": item[STATE], ":changed": {"S": changed_at}},
            "outcome": outcome,
        }

    def _read_items(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The items of `ids` that exist (state and time of change only), strongly consistent."""
        found: dict[str, dict[str, Any]] = {}
        request = {
            self.name: {
                "Keys": [{ID: {"S": i}} for i in ids],
                # The pass that armed it too: a new pass re-arms only what another one left.
                "ProjectionExpression": "#id, #state, #changed, #pass",
                "ExpressionAttributeNames": {
                    "#id": ID,
                    "#state": STATE,
                    "#changed": CHANGED_AT,
                    "#pass": PASS,
                },
                "ConsistentRead": True,
            }
        }
        rounds_without_progress = 0
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            got = response.get("Responses", {}).get(self.name, [])
            found.update((item[ID]["S"], item) for item in got)
            request = response.get("UnprocessedKeys") or {}
            rounds_without_progress = 0 if got else rounds_without_progress + 1
            if request:
                self._give_up_if_stuck(rounds_without_progress, "BatchGetItem")
                sleep_before_retry(rounds_without_progress)
        return found


def _literal(value: dict[str, str]) -> str:
    """A PartiQL literal of a string or number AttributeValue."""
    ((kind, raw),) = value.items()
    if kind == "N":
        return raw
    return "'" + raw.replace("'", "''") + "'"


def _is_state(item: dict[str, Any], state: ProgressState) -> bool:
    return STATE in item and int(item[STATE]["N"]) == state


def _changed_at(item: dict[str, Any]) -> str:
    return str(item.get(CHANGED_AT, {}).get("S", ""))


def _count(out: WriteReport, outcome: str, item: dict[str, Any] | None) -> None:
    state = int(item[STATE]["N"]) if item is not None and STATE in item else -1
    if outcome == "written":
        out.written += 1
    elif outcome == "reset":
        out.reset[state] += 1
    elif outcome == "rearmed":
        out.rearmed[state] += 1
    elif outcome == "held":
        out.held += 1
    elif outcome == "repeated":
        out.repeated += 1
    else:
        out.kept[state] += 1


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class TableLoader:
    """The IdLoader port over an upload table: what a scheduled repair loads its ids with."""

    def __init__(self, table: UploadTable) -> None:
        self._table = table

    def load(self, ids: Iterable[str], arming: Arming) -> int:
        """Upload `ids` armed for a pass; how many were written or armed again."""
        report = self._table.put_new(ids, arming=arming)
        return report.written + sum(report.rearmed.values())
