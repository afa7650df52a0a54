"""Switching a worker's EventBridge rule: the one place rules are switched (CLI and demo too)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError


def _state(events: Any, rule: str) -> str:
    try:
        return str(events.describe_rule(Name=rule)["State"])
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            raise LookupError(f"schedule rule {rule!r} does not exist") from None
        raise


def disable_rule(events: Any, rule: str) -> bool:
    """Disable `rule` if it is enabled; True if this call switched it off.

    A rule already disabled (by an operator, or by an overlapping invocation) is
    left alone.
    """
    if _state(events, rule) != "ENABLED":
        return False
    events.disable_rule(Name=rule)
    return True


def enable_rule(events: Any, rule: str) -> bool:
    """Enable `rule` if it is disabled; True if this call switched it on."""
    if _state(events, rule) == "ENABLED":
        return False
    events.enable_rule(Name=rule)
    return True


class ScheduleRule:
    """One worker's own rule (the RuleSwitch port); the client is made on first use."""

    def __init__(self, rule: str, client: Callable[[], Any], on_switch: Callable[[str], None]):
        self.rule = rule
        self._make = client
        self._events: Any = None
        self._on_switch = on_switch

    def _client(self) -> Any:
        self._events = self._events or self._make()
        return self._events

    def disable(self) -> bool:
        """Switch the rule off; True if this call did."""
        switched = disable_rule(self._client(), self.rule)
        self._on_switch("schedule switched off" if switched else "schedule was already off")
        return switched

    def enable(self) -> bool:
        """Switch the rule back on; True if this call did."""
        switched = enable_rule(self._client(), self.rule)
        self._on_switch("schedule switched back on: work appeared" if switched else "schedule on")
        return switched
