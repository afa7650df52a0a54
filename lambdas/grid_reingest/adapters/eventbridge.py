"""A worker switching its own EventBridge rule off when its work is done."""

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
