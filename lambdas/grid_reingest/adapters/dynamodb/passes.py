"""The pass records in the state table: `~pass` (the current pass), `~pass#<id>` (each pass).

Like the control item they have no `progress_state`: never in the index, never
claimed, counted or reset. One pass at a time is a conditional write of `~pass`.
Every write is an UpdateItem, as the workers' (they end passes) are allowed.
docs/state-table.md ("Passes") says why.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from grid_reingest.adapters.dynamodb.schema import ID, condition_failed, updated_if
from grid_reingest.domain.passes import Pass, Status, Verified

CURRENT_ID = "~pass"
RECORD_PREFIX = "~pass#"
HISTORY_ID = "~passes"  # the ids of every pass, oldest first
RECORD = "pass_record"  # the pass as JSON
STATUS = "pass_status"
PASS_ID = "pass_id"  # noqa: S105 - an attribute name
IDS = "pass_ids"
# Check-first items of the current pass verified so far (ADDed by batch-check).
PRESENT = "present"
REPAIRED = "repaired"
GB_SECONDS = "gb_seconds"  # the workers' Lambda time while the pass runs
# Passes `reingest passes` lists at most (the history item stays small).
HISTORY_MAX = 200


class PassRunning(RuntimeError):
    """A pass is still running: another may not start. `running` is it."""

    def __init__(self, running: Pass) -> None:
        super().__init__(
            f"pass {running.id} ({running.kind.value}, from {running.source}, started "
            f"{running.started_at} by {running.started_by}) is still running: one pass at a "
            "time. Watch it with `reingest watch`; it ends when both workers are done."
        )
        self.running = running


class PassTable:
    """The pass records of one state table."""

    def __init__(self, name: str, client: Any) -> None:
        self.name = name
        self.client = client

    def current(self) -> Pass | None:
        """The current pass (running or the last finished), or None before the first."""
        return self._get(CURRENT_ID)

    def start(self, new: Pass) -> Pass:
        """Record `new` as the current pass; PassRunning when one still runs."""
        try:
            self._write(
                CURRENT_ID,
                new,
                f"attribute_not_exists({ID}) OR {STATUS} = :finished",
                {":finished": {"S": Status.FINISHED.value}},
                remove=(PRESENT, REPAIRED, GB_SECONDS),  # the last pass's counts
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            running = self.current()
            if running is None:  # finished and gone meanwhile: try once more
                return self.start(new)
            raise PassRunning(running) from None
        self._write(RECORD_PREFIX + new.id, new)
        self.client.update_item(
            TableName=self.name,
            Key={ID: {"S": HISTORY_ID}},
            UpdateExpression=f"SET {IDS} = list_append(if_not_exists({IDS}, :empty), :id)",
            ExpressionAttributeValues={":empty": {"L": []}, ":id": {"L": [{"S": new.id}]}},
        )
        return new

    def finish(self, ended: Pass) -> bool:
        """Record `ended` (status finished, with its report) if it is the current pass and still
        running: True for the one call that did."""
        return self.save(ended, Status.RUNNING)

    def save(self, record: Pass, expected: Status) -> bool:
        """Store `record` as the current pass if it is, with status `expected` (and as its own
        record): False, storing nothing, when it is not so any more."""
        try:
            self._write(
                CURRENT_ID,
                record,
                f"{PASS_ID} = :id AND {STATUS} = :expected",
                {":id": {"S": record.id}, ":expected": {"S": expected.value}},
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        self._write(RECORD_PREFIX + record.id, record)
        return True

    def count_verified(self, verified: Verified) -> bool:
        """Add to the current pass's counts of present and repaired items, if it is still
        `verified.pass_id` (one atomic ADD); False, adding nothing, when it is not."""
        return self._add_to_current(
            f"ADD {PRESENT} :present, {REPAIRED} :repaired",
            f"{PASS_ID} = :id",
            {
                ":present": {"N": str(verified.present)},
                ":repaired": {"N": str(verified.repaired)},
                ":id": {"S": verified.pass_id},
            },
        )

    def add_usage(self, gb_seconds: float) -> bool:
        """Add a worker invocation's Lambda time to the current pass, if one runs (one atomic
        ADD); False when none runs."""
        return self._add_to_current(
            f"ADD {GB_SECONDS} :used",
            f"{STATUS} = :running",
            {":used": {"N": f"{gb_seconds:.3f}"}, ":running": {"S": Status.RUNNING.value}},
        )

    def _add_to_current(self, update: str, condition: str, values: dict[str, Any]) -> bool:
        """One conditional UpdateItem of `~pass`; False when the condition failed."""
        return updated_if(
            self.client,
            TableName=self.name,
            Key={ID: {"S": CURRENT_ID}},
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )

    def history(self, most: int = HISTORY_MAX) -> list[Pass]:
        """The passes, newest first (at most `most`)."""
        item = self.client.get_item(
            TableName=self.name, Key={ID: {"S": HISTORY_ID}}, ConsistentRead=True
        ).get("Item")
        ids = [v["S"] for v in (item or {}).get(IDS, {}).get("L", [])][-most:]
        found: dict[str, Pass] = {}
        for first in range(0, len(ids), 100):
            keys = [{ID: {"S": RECORD_PREFIX + i}} for i in ids[first : first + 100]]
            request: dict[str, Any] = {self.name: {"Keys": keys}}
            while request:
                answer = self.client.batch_get_item(RequestItems=request)
                for raw in answer["Responses"].get(self.name, []):
                    record = _record(raw)
                    found[record.id] = record
                request = answer.get("UnprocessedKeys") or {}
        return [found[i] for i in reversed(ids) if i in found]

    def _get(self, key: str) -> Pass | None:
        item = self.client.get_item(
            TableName=self.name, Key={ID: {"S": key}}, ConsistentRead=True
        ).get("Item")
        return None if item is None else _record(item)

    def _write(
        self,
        key: str,
        record: Pass,
        condition: str | None = None,
        values: dict[str, Any] | None = None,
        remove: tuple[str, ...] = (),
    ) -> None:
        """Set the item `key` to `record` (if `condition` holds), removing `remove`."""
        extra = {"ConditionExpression": condition} if condition else {}
        update = f"SET {PASS_ID} = :pid, {STATUS} = :status, {RECORD} = :record"
        if remove:
            update += " REMOVE " + ", ".join(remove)
        self.client.update_item(
            TableName=self.name,
            Key={ID: {"S": key}},
            UpdateExpression=update,
            ExpressionAttributeValues={
                ":pid": {"S": record.id},
                ":status": {"S": record.status.value},
                ":record": {"S": json.dumps(record.to_json(), separators=(",", ":"))},
                **(values or {}),
            },
            **extra,
        )


def _record(item: dict[str, Any]) -> Pass:
    record = Pass.from_json(json.loads(item[RECORD]["S"]))
    return replace(
        record,
        present=int(item.get(PRESENT, {"N": "0"})["N"]),
        repaired=int(item.get(REPAIRED, {"N": "0"})["N"]),
        gb_seconds=float(item.get(GB_SECONDS, {"N": "0"})["N"]),
    )
