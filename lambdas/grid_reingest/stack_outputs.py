"""The deployed stack's name and output keys: how the operator commands find what it made.

Shared by the CDK app, which writes the outputs, and the scripts, which read
them with DescribeStacks; nothing here imports AWS libraries.
"""

from __future__ import annotations

APP = "grid-reingest"
IMAGE_PROJECTION = "image-projection"
BATCH_INDEX = "batch-index"
BATCH_CHECK = "batch-check"

STATE_TABLE = "StateTableName"
FUNCTIONS = {
    IMAGE_PROJECTION: "ImageProjectionFunctionName",
    BATCH_INDEX: "BatchIndexFunctionName",
    BATCH_CHECK: "BatchCheckFunctionName",
}
RULES = {
    BATCH_INDEX: "BatchIndexRuleName",
    BATCH_CHECK: "BatchCheckRuleName",
}
DASHBOARD = "DashboardName"
PROJECTION_URL = "ImageProjectionUrl"


def stack_name(stage: str) -> str:
    """`grid-reingest-<STAGE>`, the Grid's `<app>-<STAGE>`."""
    return f"{APP}-{stage}"
