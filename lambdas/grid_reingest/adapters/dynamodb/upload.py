"""Uploading ids to the state table: every write conditional, so progress is never lost.

An id already in the table keeps its item (and its state) unless the operator
explicitly resets existing items, and even then never an item a worker holds.
New ids go in as PartiQL `INSERT`s (inserts.py), which never overwrite an
item. Bulk work runs in parallel batches with bounded queues, so that tens of
millions of ids pass through in bounded memory.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from grid_reingest.adapters.dynamodb.handle import TableHandle
from grid_reingest.adapters.dynamodb.inserts import Inserts, changed_at, chunks
from grid_reingest.adapters.dynamodb.reads import StateReads
from grid_reingest.adapters.dynamodb.schema import (
    BATCH_GET_MAX,
    CHANGED_AT,
    ID,
    MAX_ROUNDS_WITHOUT_PROGRESS,
    PASS,
    STATE,
    condition_failed,
    fresh_item,
)
from grid_reingest.adapters.dynamodb.write_report import WriteReport
from grid_reingest.domain.isotime import format_instant
from grid_reingest.domain.passes import Arming, rearms
from grid_reingest.domain.states import ProgressState

_CLAIM_STATES = tuple(s for s in ProgressState if s.is_claim)


@dataclass(frozen=True)
class UploadTerms:
    """What one upload does to an id already in the table, the same for every id of it."""

    # Put existing items back at the start state too (except those a worker holds).
    reset_existing: bool
    # When the upload began: an item changed since, at the start state, is its own.
    started: str
    # A claim changed since then is still held by its worker.
    cutoff: str
    arming: Arming


class Uploads:
    """Puts ids into the state table through one handle (the `upload-ids` command's writes)."""

    def __init__(self, handle: TableHandle, reads: StateReads) -> None:
        self.handle = handle
        self.reads = reads
        self.inserts = Inserts(handle, reads)

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
        report = report if report is not None else WriteReport()
        terms = UploadTerms(
            reset_existing=reset_existing,
            started=self.handle.now(),
            cutoff=format_instant(self.handle.clock() - timedelta(seconds=lease_seconds)),
            arming=arming or Arming(),
        )

        # Whether the last batch to end found ids already there (a hint: batches in
        # flight may race to set it). A file new to the table then costs one read per
        # 100 ids less; one already uploaded costs no writes.
        read_first = [True]

        def store(batch: list[str]) -> tuple[WriteReport, Exception | None]:
            # A batch that fails half way still tells what it had done.
            part = WriteReport()
            try:
                read_first[0] = self._store_batch(batch, terms, part, read_first=read_first[0])
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

        self.handle.run_bounded(store, chunks(ids, BATCH_GET_MAX), record)
        return report

    def _store_batch(
        self, ids: list[str], terms: UploadTerms, out: WriteReport, *, read_first: bool = True
    ) -> bool:
        """Deal with one batch of ids: those already there kept (or reset), the others
        inserted; counts what happened to each in `out`. Whether any was already there.

        With `read_first`, one read of the batch finds those already there before
        any write; without it, they are found by their refused INSERTs.
        """
        unique = list(dict.fromkeys(ids))
        out.repeated += len(ids) - len(unique)
        found = self.reads.items_by_id(unique) if read_first else {}
        decide = functools.partial(self._store_one, terms=terms, out=out)
        for image_id, item in found.items():
            decide(image_id, item)
        met = self.inserts.insert_new(
            [i for i in unique if i not in found], decide, out, terms.arming
        )
        return bool(found) or met

    def _store_one(
        self, image_id: str, item: dict[str, Any] | None, *, terms: UploadTerms, out: WriteReport
    ) -> None:
        for _ in range(MAX_ROUNDS_WITHOUT_PROGRESS):
            action = self._upload_action(image_id, item, terms)
            if isinstance(action, str):
                out.note(action, item)
                return
            outcome = action.pop("outcome", "reset")
            try:
                self.handle.client.put_item(
                    TableName=self.handle.name,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    **action,
                )
            except ClientError as error:
                if not condition_failed(error):
                    raise
                # The item is not as it was read: decide again from what it is now.
                item = error.response.get("Item")
                continue
            out.note("written" if item is None else outcome, item)
            return
        out.note("kept", item)  # it kept changing under us: leave it to whoever changes it

    def _upload_action(
        self, image_id: str, item: dict[str, Any] | None, terms: UploadTerms
    ) -> dict[str, Any] | str:
        """The conditional put for one id (with the outcome to count), or why it is left as
        it is."""
        arming = terms.arming
        if item is None:
            return {
                "Item": fresh_item(image_id, arming.state, self.handle.now(), arming),
                "ConditionExpression": "attribute_not_exists(#id)",
                "ExpressionAttributeNames": {"#id": ID},
            }
        state = int(item[STATE]["N"]) if STATE in item else None
        changed = changed_at(item)
        if state == arming.state and changed >= terms.started:
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
        elif not terms.reset_existing:
            return "kept"
        elif state in _CLAIM_STATES and changed >= terms.cutoff:
            return "held"
        else:
            outcome = "reset"
        return {
            "Item": fresh_item(image_id, arming.state, self.handle.now(), arming),
            "ConditionExpression": "#state = :state AND #changed = :changed",
            "ExpressionAttributeNames": {"#state": STATE, "#changed": CHANGED_AT},
            "ExpressionAttributeValues": {":state": item[STATE], ":changed": {"S": changed}},
            "outcome": outcome,
        }


class TableLoader:
    """The IdLoader port over uploads: what a scheduled repair loads its ids with."""

    def __init__(self, uploads: Uploads) -> None:
        self._uploads = uploads

    def load(self, ids: Iterable[str], arming: Arming) -> int:
        """Upload `ids` armed for a pass; how many were written or armed again."""
        report = self._uploads.put_new(ids, arming=arming)
        return report.written + sum(report.rearmed.values())
