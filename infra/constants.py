"""Every name and number the CDK app uses, each with where it comes from."""

from __future__ import annotations

from grid_reingest import names

# -- names --------------------------------------------------------------------

APP = names.APP
# The Grid's stacks are tagged and its SSM parameters named after this stack.
GRID_STACK = "media-service"
# The stages a stack is built for, as the Grid names them.
STAGES = ("TEST", "PROD")
# The context key that holds each stage's configuration (cdk.json).
STAGES_CONTEXT_KEY = "stages"

# The three functions, by the service name each reports in logs and metrics.
IMAGE_PROJECTION = names.IMAGE_PROJECTION
BATCH_INDEX = names.BATCH_INDEX
BATCH_CHECK = names.BATCH_CHECK

HANDLERS = {
    IMAGE_PROJECTION: "grid_reingest.handlers.image_projection.handler",
    BATCH_INDEX: "grid_reingest.handlers.batch_index.handler",
    BATCH_CHECK: "grid_reingest.handlers.batch_check.handler",
}


def resource_name(part: str | None, stage: str) -> str:
    """`grid-reingest-<part>-<STAGE>`, or `grid-reingest-<STAGE>`: the Grid's `<app>-<STAGE>`."""
    return f"{APP}-{part}-{stage}" if part else f"{APP}-{stage}"


def stack_name(stage: str) -> str:
    """The stack of one stage; scripts find its outputs with DescribeStacks on this name."""
    return names.stack_name(stage)


# -- stack outputs (keys the operator commands look up; shared with them) -----

OUTPUT_STATE_TABLE = names.STATE_TABLE_OUTPUT
OUTPUT_FUNCTIONS = names.FUNCTION_OUTPUTS
OUTPUT_RULES = names.RULE_OUTPUTS
OUTPUT_DASHBOARD = names.DASHBOARD_OUTPUT
OUTPUT_PROJECTION_URL = names.PROJECTION_URL_OUTPUT

# -- the Lambdas --------------------------------------------------------------

# AWS's ceiling on a Lambda invocation.
LAMBDA_MAX_TIMEOUT_SECONDS = 900
# Both workers may run for Lambda's maximum: batch-index stops starting images
# STOP_MARGIN_SECONDS before the end, batch-check finishes its batch; billing
# is for the time used, not the limit.
WORKER_TIMEOUT_SECONDS = LAMBDA_MAX_TIMEOUT_SECONDS
# image-projection waits for image-loader (GRID_LOADER_TIMEOUT_SECONDS), then
# for the data services (GRID_SERVICE_TIMEOUT_SECONDS, called concurrently);
# this covers a cold start and merging the answers on top of those two.
PROJECTION_TIMEOUT_MARGIN_SECONDS = 20

MEMORY_MB = {
    # One image at a time: image-loader's JSON (up to ~1 MiB, SPEC §5) held a
    # few times over while merging. 512 MB also buys a third of a vCPU for JSON.
    IMAGE_PROJECTION: 512,
    # Up to GRID_CONCURRENCY projected images in flight (a synchronous invoke
    # returns at most 6 MB) while each is serialised and gzipped; 1 GB is ~0.6
    # vCPU, which keeps gzip of a 500-image batch from being the bottleneck.
    BATCH_INDEX: 1024,
    # Only ids and status codes; Lambda's floor for a Python worker with threads.
    BATCH_CHECK: 256,
}

# A scheduled invocation that cannot start within this (the worker is at its
# reserved concurrency) is dropped rather than queued: the next tick comes
# anyway. 60 s is the smallest age Lambda allows.
SCHEDULED_EVENT_MAX_AGE_SECONDS = 60

# Log retention the context may choose (CloudWatch Logs' allowed values, the
# useful subset).
LOG_RETENTION_DAYS = (7, 14, 30, 60, 90, 180, 365)

# -- schedules and limits accepted from context ---------------------------------

# EventBridge's rate() takes whole minutes; a day is the longest useful gap.
SCHEDULE_MINUTES_RANGE = (1, 1440)
# Reserved concurrency per worker: the Grid is protected by back-pressure and
# GRID_CONCURRENCY, so a handful of parallel invocations is plenty, and every
# unit reserved is taken from the account's shared pool.
RESERVED_CONCURRENCY_RANGE = (1, 20)

# -- metrics (names: grid_reingest.telemetry; docs/infra.md) --------------------

# One data point per this period on the dashboard and alarms.
METRIC_PERIOD_MINUTES = 5
# The unknown-failure share is judged over this many periods, so that one bad
# batch does not page anyone but a sustained failure does.
FAILURE_ALARM_PERIODS = 3
# Any error of a scheduled worker is worth a look: it means a batch stopped
# early (claims are released or reclaimed, so nothing is lost).
ERROR_ALARM_THRESHOLD = 1
