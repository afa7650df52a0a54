"""The control item in the state table: the operator's knobs and the controller's state.

One item with id CONTROL_ID. It has no `progress_state` (and no index key), so
it is never in the by-state index, never claimed and never counted; scans skip
it. The knobs and the controller's state are separate attributes: an operator's
`pause` never collides with a worker saving the controller's state, and two
workers saving the state collide only with each other (conditional on
`pace_version`).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from grid_reingest.adapters.dynamodb.schema import condition_failed, updated_if
from grid_reingest.domain.control import Control, Knobs, PaceState
from grid_reingest.domain.isotime import format_instant, utc_now

# Not a Grid id (those are 40 lowercase hex characters), so never an image's item.
CONTROL_ID = "~control"
PAUSED = "paused"
MAX_IN_FLIGHT = "max_in_flight"
MAX_RATE = "max_rate_per_minute"
KNOBS_CHANGED_AT = "knobs_changed_at"
PACE = "pace"  # batch-index's controller state, as JSON
CHECK_PACE = "check_pace"  # batch-check's (paced on media-api alone)
REFUSED_RUNS = "refused_runs"  # batch-index invocations in a row whose stream refused its calls


class ControlTable:
    """The control item of one state table (the ControlStore port)."""

    def __init__(self, name: str, client: Any, pace: str = PACE) -> None:
        """`pace`: the attribute that holds this worker's controller state (PACE for
        batch-index, CHECK_PACE for batch-check); its version is `<pace>_version`."""
        self.name = name
        self.pace = pace
        self.version = f"{pace}_version"
        self.client = client

    def read(self) -> Control:
        """The item as it is now; defaults when nobody has written it yet."""
        item = self.client.get_item(
            TableName=self.name, Key={"id": {"S": CONTROL_ID}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return Control()
        return Control(
            knobs=_knobs(item),
            pace=_pace(item, self.pace),
            version=_number(item, self.version, 0) or 0,
        )

    def save_pace(self, pace: PaceState, expected_version: int) -> bool:
        """Store the controller's state if nobody saved since `expected_version`."""
        values: dict[str, Any] = {
            ":pace": {"S": json.dumps(_pace_json(pace), separators=(",", ":"))},
            ":next": {"N": str(expected_version + 1)},
        }
        if expected_version == 0:
            condition = f"attribute_not_exists({self.version})"
        else:
            condition = f"{self.version} = :expected"
            values[":expected"] = {"N": str(expected_version)}
        return updated_if(
            self.client,
            TableName=self.name,
            Key={"id": {"S": CONTROL_ID}},
            UpdateExpression=f"SET {self.pace} = :pace, {self.version} = :next",
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )

    def set_knobs(self, knobs: Knobs, previous: Knobs | None = None) -> Control:
        """Write the operator's knobs; the controller's state is left as it is.

        With `previous` (the knobs as the operator read them), only the knobs that
        differ from it are written, so two operators changing different knobs at
        the same time both keep their change.
        """
        fields = (
            (PAUSED, knobs.paused, "paused"),
            (MAX_IN_FLIGHT, knobs.max_in_flight, "max_in_flight"),
            (MAX_RATE, knobs.max_rate_per_minute, "max_rate_per_minute"),
        )
        sets = [f"{KNOBS_CHANGED_AT} = :now"]
        removes = []
        values: dict[str, Any] = {":now": {"S": format_instant(utc_now())}}
        for attribute, value, name in fields:
            if previous is not None and getattr(previous, name) == value:
                continue
            if value is None:
                removes.append(attribute)
            else:
                sets.append(f"{attribute} = :{attribute}")
                values[f":{attribute}"] = (
                    {"BOOL": value} if isinstance(value, bool) else {"N": str(value)}
                )
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        self.client.update_item(
            TableName=self.name,
            Key={"id": {"S": CONTROL_ID}},
            UpdateExpression=update,
            ExpressionAttributeValues=values,
        )
        return self.read()

    def count_refusal(self, refused: bool) -> int:
        """Add one to the refused invocations in a row, or reset them to 0; the count."""
        if refused:
            item = self.client.update_item(
                TableName=self.name,
                Key={"id": {"S": CONTROL_ID}},
                UpdateExpression=f"ADD {REFUSED_RUNS} :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            )["Attributes"]
            return int(item[REFUSED_RUNS]["N"])
        try:
            # Written only when there is something to reset: one cheap refused condition else.
            self.client.update_item(
                TableName=self.name,
                Key={"id": {"S": CONTROL_ID}},
                UpdateExpression=f"SET {REFUSED_RUNS} = :zero",
                ConditionExpression=f"{REFUSED_RUNS} > :zero",
                ExpressionAttributeValues={":zero": {"N": "0"}},
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
        return 0


def _number(item: dict[str, Any], key: str, default: int | None) -> int | None:
    value = item.get(key)
    return default if value is None else int(value["N"])


def _knobs(item: dict[str, Any]) -> Knobs:
    return Knobs(
        paused=bool(item.get(PAUSED, {}).get("BOOL", False)),
        max_in_flight=_number(item, MAX_IN_FLIGHT, None),
        max_rate_per_minute=_number(item, MAX_RATE, None),
    )


def _pace_json(pace: PaceState) -> dict[str, Any]:
    return pace.to_json()


def _pace(item: dict[str, Any], attribute: str) -> PaceState | None:
    raw = item.get(attribute, {}).get("S")
    if raw is None:
        return None
    try:
        return PaceState.from_json(json.loads(raw))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"the control item's {attribute!r} attribute ({CONTROL_ID}) is not a controller state "
            f"this version reads: {error}"
        ) from None
