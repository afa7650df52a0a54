"""Every name shared between the runtime, the CDK app and the operator commands.

The app and its functions, the stack's output keys, the metric namespace,
metric and dimension names. Nothing here imports AWS libraries, so infra and
the scripts use it without the Lambda dependencies.
"""

from __future__ import annotations

# -- the app and its functions --------------------------------------------------

APP = "grid-reingest"
IMAGE_PROJECTION = "image-projection"
BATCH_INDEX = "batch-index"
BATCH_CHECK = "batch-check"
# Keeps the items per state (the `~counts` item) from the state table's stream.
STATE_COUNTS = "state-counts"
# The optional scheduled repair (a stage's `repair` in cdk.json).
REPAIR = "repair"


def stack_name(stage: str) -> str:
    """`grid-reingest-<STAGE>`, the Grid's `<app>-<STAGE>`."""
    return f"{APP}-{stage}"


# -- stack outputs: how the operator commands find what the stack made -------

STATE_TABLE_OUTPUT = "StateTableName"
FUNCTION_OUTPUTS = {
    IMAGE_PROJECTION: "ImageProjectionFunctionName",
    BATCH_INDEX: "BatchIndexFunctionName",
    BATCH_CHECK: "BatchCheckFunctionName",
    STATE_COUNTS: "StateCountsFunctionName",
}
RULE_OUTPUTS = {
    BATCH_INDEX: "BatchIndexRuleName",
    BATCH_CHECK: "BatchCheckRuleName",
}
# Only where the stage has a scheduled repair.
REPAIR_FUNCTION_OUTPUT = "RepairFunctionName"
REPAIR_RULE_OUTPUT = "RepairRuleName"
DASHBOARD_OUTPUT = "DashboardName"
PROJECTION_URL_OUTPUT = "ImageProjectionUrl"

# -- our metrics ------------------------------------------------------------------

NAMESPACE = "GridReingest"
# Dimensions on every metric: the worker's service name and the stage.
SERVICE_DIMENSION = "service"
STAGE_DIMENSION = "stage"

CLAIMED = "Claimed"
RECLAIMED = "Reclaimed"  # claims of an invocation that died, taken over after the lease
ENQUEUED = "Enqueued"  # state 3: accepted by thrall's stream
VERIFIED = "Verified"  # state 6
FAILED = "Failed"  # unknown failures of one image (retried, or 8 when spent)
RELEASED = "Released"  # claims given back untouched (time, the system's failure, dry run)
LOST_CLAIMS = "LostClaims"  # outcomes not written: the claim had moved on
BACKPRESSURE_SKIPS = "BackPressureSkips"
ITERATOR_AGE = "ThrallIteratorAgeMs"
# Invocations stopped for the system's failure (a service down, the key refused, overload
# across most images): claims went back with no attempt, the invocation failed.
SYSTEMIC_FAILURES = "SystemicFailures"
# Pace steps at which a signal could not be read, and the pace went by the next one:
# thrall's lease table (then CloudWatch), CloudWatch (then holding, then nothing).
CHECKPOINTS_UNREAD = "CheckpointsUnread"
# The scheduled repair: a run refused (a pass still running), ids loaded, passes started.
REPAIR_REFUSED = "RepairRefused"
REPAIR_IDS_LOADED = "RepairIdsLoaded"
REPAIR_STARTED = "RepairStarted"
ITERATOR_AGE_UNREAD = "IteratorAgeUnread"
KINESIS_CALLS = "KinesisCalls"
COMPLETED = "PassFinished"  # the worker found nothing left and switched its rule off
DURATION = "DurationMs"

# state-counts' own, per invocation: stream records read, and batches found already
# counted (Lambda delivered them again; they added nothing).
TALLY_RECORDS = "TallyRecords"
TALLY_REPEATS = "TallyRepeatedBatches"

# image-projection's own, one per request or image.
PROJECTION_READY = "ProjectionReady"  # direct invoke: the record fits on the stream
PROJECTION_TOO_BIG = "ProjectionTooBig"  # direct invoke: state 9001
PROJECTION_FOUND = "ProjectionFound"
PROJECTION_NOT_FOUND = "ProjectionNotFound"
PROJECTION_FAILED = "ProjectionFailed"
PROJECTION_TIME = "ProjectionTime"  # milliseconds
IMAGE_SIZE = "ImageSize"  # bytes of the projected image's JSON
REQUEST_REJECTED = "RequestRejected"  # HTTP: bad path, method, id or key
INVALID_EVENT = "InvalidEvent"  # direct invoke without a usable id
PROJECTION_METRICS = (
    PROJECTION_READY,
    PROJECTION_TOO_BIG,
    PROJECTION_FOUND,
    PROJECTION_NOT_FOUND,
    PROJECTION_FAILED,
    PROJECTION_TIME,
    IMAGE_SIZE,
    REQUEST_REJECTED,
    INVALID_EVENT,
)


def state_metric(state: int) -> str:
    """Items moved into `state` by one invocation, e.g. "State3"."""
    return f"State{state}"


# -- thrall's stream, as CloudWatch names it --------------------------------------

KINESIS_NAMESPACE = "AWS/Kinesis"
ITERATOR_AGE_METRIC = "GetRecords.IteratorAgeMilliseconds"
STREAM_DIMENSION = "StreamName"

# -- safety and pace (the workers' controller and what it reacts to) -----------------

KINESIS_REFUSED = "KinesisCallsRefused"  # whole PutRecords calls refused (config or outage)
OVERLOAD = "OverloadAnswers"  # 429/502/503/504, Lambda throttles, stream throughput exceeded
INFRA_RELEASED = "InfraReleased"  # claims given back, no attempt counted: not the image's fault
EXPIRED_CLAIMS = "ExpiredClaims"  # claims whose lease ran out: an attempt counted
CONTROL_LIMIT = "ControllerLimit"  # images in flight the controller allows now
CONTROL_RATE = "ControllerRate"  # images a minute the controller allows now
PAUSED = "Paused"  # 1 while the operator has paused the pass

# -- the state table's shape, as the CDK app declares it ------------------------------
# (adapters/dynamodb/schema.py reads and writes the same; tests/infra compares the two)

STATE_INDEX = "by-state"  # the index workers find work through
ID_ATTRIBUTE = "id"  # the table's partition key: the Grid image id
STATE_SHARD_ATTRIBUTE = "state_shard"  # the index's partition key, "<state>#<shard>"
CHANGED_AT_ATTRIBUTE = "state_changed_at"  # the index's sort key
STATE_ATTRIBUTE = "progress_state"  # every image's state; items without it are not images
TTL_ATTRIBUTE = "expires_at"  # the table's time-to-live: the tally's batch markers only
# The tally's own items all start with this: `~counts` and `~counts-batch#<event id>`.
TALLY_KEY_PREFIX = "~counts"
