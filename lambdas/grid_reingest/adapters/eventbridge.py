"""EventBridge schedules: the one place rules are switched — a worker switching its own rule
off when its work is done (and back on when work appeared), the operator's start and stop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError


def _state(events: Any, rule: str) -> str:
    return str(rule_state(events, rule)["State"])


def disable_rule(events: Any, rule: str) -> bool:
    """Disable `rule` if it is enabled; True if this call switched it off.

    A rule already disabled (by an operator, or by an overlapping invocation) is
    left alone.
    """
    if _state(events, rule) != "ENABLED":
        return False
    events.disable_rule(Name=rule)
    return True


def rule_state(events: Any, rule: str) -> dict[str, Any]:
    """`rule`'s DescribeRule answer (State, ScheduleExpression...); LookupError if it does
    not exist."""
    try:
        answer: dict[str, Any] = events.describe_rule(Name=rule)
        return answer
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            raise LookupError(f"schedule rule {rule!r} does not exist") from None
        raise


def switch_rule(events: Any, rule: str, enabled: bool = True) -> dict[str, Any]:
    """Switch `rule` on (or off with enabled=False); returns its state afterwards.

    The operator's start and stop: unlike a worker's disable_rule, it acts whatever the
    rule's state, so that running it twice is harmless.
    """
    rule_state(events, rule)
    if enabled:
        events.enable_rule(Name=rule)
    else:
        events.disable_rule(Name=rule)
    return rule_state(events, rule)


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
