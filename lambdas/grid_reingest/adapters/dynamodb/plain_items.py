"""Reading Scan pages of plain items with json alone (a botocore before-parse hook)."""

from __future__ import annotations

import json
from typing import Any

# Registers read_plain_items once on a client, however many tables share it.
PLAIN_ITEMS_HOOK = "grid-reingest-plain-scan-items"


def read_plain_items(
    response_dict: dict[str, Any],
    customized_response_dict: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """A botocore before-parse hook: a page's Items read with json alone.

    botocore walks every attribute value of every item through the service
    model, about 6 µs of CPU a row, which bounds a scan of millions of rows
    however many segments run. Strings ("S") and numbers ("N") come out of
    that walk exactly as JSON has them, so a page holding nothing else is
    decoded once here and botocore parses only the rest (counts, the next
    key); any other page is left to botocore untouched.
    """
    if customized_response_dict is None or response_dict.get("status_code") != 200:
        return  # a botocore without the means to hand items back, or an error
    try:
        body = json.loads(response_dict["body"])
    except ValueError:
        return  # botocore reports what it cannot parse
    items = body.pop("Items", None) if isinstance(body, dict) else None
    if not items or not _only_plain_values(items):
        return
    response_dict["body"] = json.dumps(body).encode()
    customized_response_dict["Items"] = items


def _only_plain_values(items: Any) -> bool:
    """Whether every attribute value of every item is a string or a number."""
    if type(items) is not list:
        return False
    for item in items:
        if type(item) is not dict:
            return False
        for value in item.values():
            if type(value) is not dict or len(value) != 1:
                return False
            if "S" not in value and "N" not in value:
                return False
    return True
