"""Every name and number the CDK app uses, each with where it comes from."""

from __future__ import annotations

from grid_reingest import names

# -- names --------------------------------------------------------------------
# The app, function, output and metric names are `grid_reingest.names`, imported
# where they are used; this module holds only what the CDK app alone needs.

# The Grid's stacks are tagged and its SSM parameters named after this stack.
GRID_STACK = "media-service"
# The stages a stack is built for, as the Grid names them.
STAGES = ("TEST", "PROD")
# Stages whose alarms must reach somebody: config refuses one without a topic or email.
ALERTED_STAGES = ("PROD",)
# The context key that holds each stage's configuration (cdk.json).
STAGES_CONTEXT_KEY = "stages"

HANDLERS = {
    names.IMAGE_PROJECTION: "grid_reingest.handlers.image_projection.handler",
    names.BATCH_INDEX: "grid_reingest.handlers.batch_index.handler",
    names.BATCH_CHECK: "grid_reingest.handlers.batch_check.handler",
    names.STATE_COUNTS: "grid_reingest.handlers.state_counts.handler",
    names.REPAIR: "grid_reingest.handlers.repair.handler",
}


def resource_name(part: str | None, stage: str) -> str:
    """`grid-reingest-<part>-<STAGE>`, or `grid-reingest-<STAGE>`: the Grid's `<app>-<STAGE>`."""
    return f"{names.APP}-{part}-{stage}" if part else f"{names.APP}-{stage}"


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
    names.IMAGE_PROJECTION: 512,
    # Up to MAX_IN_FLIGHT projected images in flight (a synchronous invoke
    # returns at most 6 MB) while each is serialised and gzipped; 1 GB is ~0.6
    # vCPU, which keeps gzip of a 500-image batch from being the bottleneck.
    names.BATCH_INDEX: 1024,
    # Only ids and status codes; Lambda's floor for a Python worker with threads.
    names.BATCH_CHECK: 256,
    # A batch of stream records (STATE_COUNTS_BATCH_SIZE items of ~1 KB) and one
    # transaction; 256 MB keeps the cold start of boto3 and Powertools short.
    names.STATE_COUNTS: 256,
    # Listing keys and uploading ids, in pages; an inventory's data file is read from
    # /tmp a batch at a time. 1 GB is ~0.6 vCPU: the upload is bound by the client's CPU.
    names.REPAIR: 1024,
}

# -- state-counts: the items per state, from the table's stream -------------------

# Records an invocation takes at most: one transaction on `~counts` per batch, so
# the larger the batch the fewer writes (DynamoDB streams allow up to 10,000).
STATE_COUNTS_BATCH_SIZE = 1000
# Lambda waits this long to fill a batch: at most one transaction per stream shard
# this often, however fast items move, and `watch` is at most this late (plus
# Lambda's own polling, about a second).
STATE_COUNTS_WINDOW_SECONDS = 10
# One batch and one transaction take well under a second; a minute covers a cold
# start and DynamoDB's retries of a throttled transaction.
STATE_COUNTS_TIMEOUT_SECONDS = 60
# The tally is this late before its alarm goes off (the function's IteratorAge):
# `watch` then shows old counts, and records expire from the stream after 24 h.
STATE_COUNTS_LATE_ALARM_MINUTES = 15

# The schedule is a keep-alive: a tick that cannot start within this (the worker
# is at its reserved concurrency: invocations already running keep working) is
# dropped rather than queued, and the next tick comes a minute later anyway.
# 60 s is the smallest age Lambda allows.
SCHEDULED_EVENT_MAX_AGE_SECONDS = 60

# Log retention the context may choose (CloudWatch Logs' allowed values, the
# useful subset).
LOG_RETENTION_DAYS = (7, 14, 30, 60, 90, 180, 365)

# -- schedules and limits accepted from context ---------------------------------

# EventBridge's rate() takes whole minutes; a day is the longest useful gap.
SCHEDULE_MINUTES_RANGE = (1, 1440)
# Reserved concurrency per worker: the Grid is protected by back-pressure and
# the pace controller, so a handful of parallel invocations is plenty, and every
# unit reserved is taken from the account's shared pool.
RESERVED_CONCURRENCY_RANGE = (1, 20)
# image-projection's reserved concurrency: an account's default concurrency is
# 1,000, of which Lambda keeps 100 unreserved for functions without a reservation.
PROJECTION_RESERVED_CONCURRENCY_RANGE = (1, 900)

# -- metrics and alarms (names: grid_reingest.names; docs/infra.md) ---------------

# One data point per this period on the dashboard and alarms.
METRIC_PERIOD_MINUTES = 5
# The unknown-failure share is judged over this many periods, so that one bad
# batch does not page anyone but a sustained failure does.
FAILURE_ALARM_PERIODS = 3
# Any error of a worker is worth a look: it raises on a configuration error
# (a stream that refuses every call, a revoked key) after giving its claims back.
ERROR_ALARM_THRESHOLD = 1
# A pass is stalled when its rule ticks and nothing moves for this many periods
# (20 min): a continuous invocation may report its counts only when it ends, up
# to WORKER_TIMEOUT_SECONDS (15 min) after it started, so three quiet periods
# can be a healthy pass; four cannot. Also long enough for the controller's
# back-off after an overload and for CloudWatch's late points.
STALL_ALARM_PERIODS = 4
# Refused Kinesis calls, lost or expired claims and projection throttles should
# never happen in a healthy pass: one is worth a look.
SAFETY_ALARM_THRESHOLD = 1
# A pace signal that cannot be read degrades to the next one; it alarms when it
# lasts: this many unread pace steps in a period are 5 minutes of them at the
# default PACE_REFRESH_SECONDS (15 s), however the invocations fall in periods.
UNREAD_ALARM_STEPS = 20

# EventBridge's own metric of a rule's target invocations: data means the rule is on.
EVENTS_NAMESPACE = "AWS/Events"
RULE_INVOCATIONS_METRIC = "Invocations"
RULE_DIMENSION = "RuleName"
