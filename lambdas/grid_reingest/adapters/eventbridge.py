"""EventBridge schedules: a worker switching its own rule off when its work is done, and the
operator's start and stop (the one place rules are switched)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


def disable_rule(events: Any, rule: str) -> bool:
    """Disable `rule` if it is enabled; True if this call switched it off.

    A rule already disabled (by an operator, or by an overlapping invocation) is
    left alone.
    """
    try:
        state = events.describe_rule(Name=rule)["State"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            raise LookupError(f"schedule rule {rule!r} does not exist") from None
        raise
    if state != "ENABLED":
        return False
    events.disable_rule(Name=rule)
    return True


def rule_state(events: Any, rule: str) -> dict[str, Any]:
    """`rule`'s DescribeRule answer (State, ScheduleExpression...); LookupError if it does
    not exist."""
    try:
        return events.describe_rule(Name=rule)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            raise LookupError(f"schedule rule {rule!r} does not exist") from None
        raise


def enable_rule(events: Any, rule: str, enabled: bool = True) -> dict[str, Any]:
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
