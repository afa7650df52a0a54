"""Every variable a function reads, declared once: the CDK app imports these to wire the Lambdas."""

from __future__ import annotations

import re
from dataclasses import replace as _replace
from typing import Any

from grid_reingest.domain.states import ProgressState
from grid_reingest.settings.var import Flag, Names, Text, Url, Var, matching, var, worker_state

# Kinesis's limit on one record: data plus partition key.
KINESIS_RECORD_MAX_BYTES = 1024 * 1024

STAGE = var("STAGE", Text, "Stage name, a dimension of every metric", "DEV", allowed="any word")
STATE_TABLE_NAME = var("STATE_TABLE_NAME", Text, "The state table's name", allowed="a table name")

GRID_DOMAIN_ROOT = var(
    "GRID_DOMAIN_ROOT",
    Text,
    "The Grid's domain root; each service is https://<prefix><root>",
    None,
    allowed="a domain name, e.g. media.example.org",
)
# Service name -> (URL variable, the Guardian's host prefix).
SERVICES: dict[str, tuple[str, str]] = {
    "media-api": ("GRID_MEDIA_API_URL", "api.media."),
    "image-loader": ("GRID_IMAGE_LOADER_URL", "loader.media."),
    "leases": ("GRID_LEASES_URL", "media-leases."),
    "collections": ("GRID_COLLECTIONS_URL", "media-collections."),
    "metadata-editor": ("GRID_METADATA_EDITOR_URL", "media-metadata."),
    "usage": ("GRID_USAGE_URL", "media-usage."),
    "cropper": ("GRID_CROPPER_URL", "cropper.media."),
}
# Service name -> its base URL's variable.
SERVICE_URLS: dict[str, Var] = {
    service: var(name, Url, f"{service} base URL", None, allowed="http(s) URL")
    for service, (name, _) in SERVICES.items()
}
GRID_API_KEY_PARAMETER = var(
    "GRID_API_KEY_PARAMETER",
    Text,
    "SSM SecureString parameter holding the Grid API key",
    None,
    allowed="a parameter name",
)
GRID_API_KEY_SECRET = var(
    "GRID_API_KEY_SECRET",
    Text,
    "Secrets Manager secret holding the Grid API key",
    None,
    allowed="a secret name or ARN",
)
GRID_API_KEY = var(
    "GRID_API_KEY",
    str,
    "The Grid API key itself: local runs only, refused inside Lambda",
    None,
    allowed="a key",
)
GRID_LOADER_TIMEOUT_SECONDS = var(
    "GRID_LOADER_TIMEOUT_SECONDS",
    int,
    "How long one call to image-loader may take in all (connecting, retries, the whole body)",
    300,
    ge=1,
    le=900,
)
GRID_SERVICE_TIMEOUT_SECONDS = var(
    "GRID_SERVICE_TIMEOUT_SECONDS",
    int,
    "How long one call to any other Grid service may take in all (connecting, retries, body)",
    10,
    ge=1,
    le=120,
)
# Body caps. A projected image must fit one Kinesis record (1 MiB, gzipped);
# gzip rarely shrinks the Grid's JSON more than ~10x, so an image-loader answer
# above 16 MiB could hardly ever be published, while 16 MiB of JSON parses into
# about 80 MB of Python objects (~5x, measured on the simulated Grid's images):
# well within image-projection's memory. The data services' answers (leases,
# usages, crops, edits) are merged into that same image, so each is held to a
# quarter of it. The smallest cap allowed is one read chunk (64 KiB).
_BODY_BYTES: dict[str, Any] = {"ge": 64 * 1024, "le": 256 * 1024 * 1024}
GRID_MAX_LOADER_BODY_BYTES = var(
    "GRID_MAX_LOADER_BODY_BYTES",
    int,
    "Largest image-loader answer read (bytes); a larger one fails the image, unread",
    16 * 1024 * 1024,
    **_BODY_BYTES,
)
GRID_MAX_SERVICE_BODY_BYTES = var(
    "GRID_MAX_SERVICE_BODY_BYTES",
    int,
    "Largest answer of any other Grid service read (bytes); a larger one fails the call, unread",
    4 * 1024 * 1024,
    **_BODY_BYTES,
)
GRID_CONCURRENCY = var(
    "GRID_CONCURRENCY", int, "Images worked on at once towards the Grid", 32, ge=1, le=256
)
MAX_MESSAGE_BYTES = var(
    "MAX_MESSAGE_BYTES",
    int,
    "Largest Kinesis record (data + partition key); bigger images go to 9001",
    KINESIS_RECORD_MAX_BYTES,
    ge=1024,
    le=KINESIS_RECORD_MAX_BYTES,
)


def _start_state(name: str, worker: str, default: ProgressState, other: ProgressState) -> Var:
    """A worker's start state: any state but a claim and `other`, the other worker's start
    (the words for what is allowed follow from that rule)."""
    refused = sorted({int(other), *(int(s) for s in ProgressState if s.is_claim)})
    words = ", ".join(map(str, refused[:-1])) + f" and {refused[-1]}"
    return var(
        name,
        worker_state(other),
        f"The state {worker} takes ids from",
        default,
        allowed=f"a state number other than {words}",
    )


INDEX_START_STATE = _start_state(
    "INDEX_START_STATE", "batch-index", ProgressState.NOT_STARTED, ProgressState.ENQUEUED
)
CHECK_START_STATE = _start_state(
    "CHECK_START_STATE", "batch-check", ProgressState.ENQUEUED, ProgressState.NOT_STARTED
)
CHECK_MIN_AGE_SECONDS = var(
    "CHECK_MIN_AGE_SECONDS",
    int,
    "media-api's 404 is final (state 7) only for images enqueued at least this long before "
    "the records thrall is reaching (its lag as batch-index last judged it is added); a "
    "younger image is asked again once it is that old",
    120,
    ge=0,
    le=86400,
)
CHECK_FIRST_LOOK_SECONDS = var(
    "CHECK_FIRST_LOOK_SECONDS",
    int,
    "Ask media-api first about images enqueued this long before the records thrall is "
    "reaching (its lag added); at most CHECK_MIN_AGE_SECONDS",
    15,
    ge=0,
    le=86400,
)
MAX_ATTEMPTS = var(
    "MAX_ATTEMPTS", int, "Failures of one image before it is left at state 8", 3, ge=1, le=100
)
CLAIM_LEASE_SECONDS = var(
    "CLAIM_LEASE_SECONDS",
    int,
    "Age after which a claim is taken to belong to an invocation that died; must exceed the "
    "Lambda timeout",
    1200,
    ge=60,
    le=86400,
)
STOP_MARGIN_SECONDS = var(
    "STOP_MARGIN_SECONDS",
    int,
    "Stop starting images when the invocation has less than this left "
    "(> PROJECTION_TIMEOUT_SECONDS + RECORD_BUDGET_SECONDS)",
    480,
    ge=1,
    le=900,
)
THRALL_STREAM_NAME = var(
    "THRALL_STREAM_NAME",
    Text,
    "thrall's low-priority Kinesis stream (name or ARN)",
    allowed="a stream name or ARN",
)
BACKPRESSURE_STREAMS = var(
    "BACKPRESSURE_STREAMS",
    Names,
    "Streams whose iterator age is watched (comma-separated names)",
    None,
    allowed="stream names",
)
# DynamoDB's rule for a table name.
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")


def dynamodb_table_name(raw: str) -> str:
    """A DynamoDB table name as DynamoDB allows it, or ValueError."""
    if not _TABLE_NAME.fullmatch(raw):
        raise ValueError("is not a DynamoDB table name")
    return raw


THRALL_CHECKPOINT_TABLE = var(
    "THRALL_CHECKPOINT_TABLE",
    matching(dynamodb_table_name),
    "thrall's KCL lease table (its checkpoints: a fresher view of its progress than "
    "CloudWatch's iterator age); unset: CloudWatch's only",
    None,
    allowed="a DynamoDB table name: 3-255 of A-Z a-z 0-9 _ . -",
)
MAX_ITERATOR_AGE_MS = var(
    "MAX_ITERATOR_AGE_MS",
    int,
    "Take no work while thrall's iterator age is above this",
    60000,
    ge=0,
    le=7 * 24 * 3600 * 1000,
)
SCHEDULE_RULE_NAME = var(
    "SCHEDULE_RULE_NAME",
    Text,
    "The EventBridge rule this worker switches off when its work is done",
    None,
    allowed="a rule name",
)
PROJECTION_FUNCTION_NAME = var(
    "PROJECTION_FUNCTION_NAME",
    Text,
    "image-projection Lambda to invoke; unset: project in-process (local runs)",
    None,
    allowed="a function name or ARN",
)
BREAKER_FAILURE_SHARE = var(
    "BREAKER_FAILURE_SHARE",
    float,
    "Stop the batch when more than this share of finished images failed for one reason",
    0.5,
    gt=0,
    le=1,
)
BREAKER_MIN_RESULTS = var(
    "BREAKER_MIN_RESULTS",
    int,
    "Finished images needed before the breaker may trip",
    20,
    ge=1,
    le=5000,
)
MAX_IN_FLIGHT = var(
    "MAX_IN_FLIGHT",
    int,
    "Most images batch-index has in flight at once (the controller stays under it)",
    32,
    ge=1,
    le=1024,
)
CHECK_MAX_IN_FLIGHT = var(
    "CHECK_MAX_IN_FLIGHT",
    int,
    "Most images batch-check asks media-api about at once",
    8,
    ge=1,
    le=256,
)
PROJECTION_TIMEOUT_SECONDS = var(
    "PROJECTION_TIMEOUT_SECONDS",
    int,
    "Longest one projection may take (image-projection's timeout)",
    300,
    ge=1,
    le=900,
)
# After its last work returns, a worker still publishes what it holds (one
# PutRecords call) and records each outcome (conditional UpdateItems in
# parallel), each with botocore's standard retries as adapters/aws.py sets them:
# 10 attempts, backoff capped at 20 s, so at most 1 + 2 + 4 + 8 + 16 + 4 x 20 =
# 111 s of waiting; 120 s covers that and the calls themselves.
RECORD_BUDGET_SECONDS = var(
    "RECORD_BUDGET_SECONDS",
    int,
    "Time kept, after the last work can finish, to publish and record what a worker holds",
    120,
    ge=1,
    le=300,
)
CHECK_STOP_MARGIN_SECONDS = var(
    "CHECK_STOP_MARGIN_SECONDS",
    int,
    "batch-check stops starting lookups with less than this left (> service timeout + budget)",
    150,
    ge=1,
    le=900,
)
PACE_REFRESH_SECONDS = var(
    "PACE_REFRESH_SECONDS",
    int,
    "How often a running worker reads the control item (pause, ceilings) and steps the "
    "controller; a worker that can start nothing this long ends its invocation",
    15,
    ge=1,
    le=300,
)
DRY_RUN = var(
    "DRY_RUN", Flag, "Claim, project and size-check, publish nothing, put every id back", False
)


# -- the scheduled repair ------------------------------------------------------------------


def _s3_prefix_url(raw: str) -> str:
    bucket = raw[len("s3://") :].split("/", 1)[0] if raw.startswith("s3://") else ""
    if not bucket:
        raise ValueError("is not s3://BUCKET/PREFIX/")
    return raw


REPAIR_SOURCE_BUCKET = var(
    "REPAIR_SOURCE_BUCKET",
    Text,
    "The Grid's image bucket the scheduled repair lists (else REPAIR_INVENTORY_URL)",
    None,
    allowed="a bucket name",
)
REPAIR_INVENTORY_URL = var(
    "REPAIR_INVENTORY_URL",
    matching(_s3_prefix_url),
    "Where the image bucket's S3 Inventory reports are: the repair reads the newest manifest.json "
    "under it (else REPAIR_SOURCE_BUCKET)",
    None,
    allowed="s3://BUCKET/PREFIX/",
)
REPAIR_INSTANCE = var(
    "REPAIR_INSTANCE",
    Text,
    "A multi-instance Grid's instance: originals under <instance>/a/b/c/d/e/f/<id>",
    None,
    allowed="an instance name",
)
REPORT_TOPIC_ARN = var(
    "REPORT_TOPIC_ARN",
    Text,
    "The SNS topic a pass's report (and a refused scheduled run) is published on",
    None,
    allowed="an SNS topic ARN",
)
INDEX_RULE_NAME = var(
    "INDEX_RULE_NAME",
    Text,
    "batch-index's schedule rule, switched on once a pass is loaded",
    allowed="a rule name",
)
# batch-check's view of batch-index's rule: optional (a check that sends nothing back).
WAKE_INDEX_RULE_NAME = _replace(
    INDEX_RULE_NAME,
    help="batch-index's schedule rule, switched on when a check-first item goes back to it",
    default_value=None,
)
CHECK_RULE_NAME = var(
    "CHECK_RULE_NAME",
    Text,
    "batch-check's schedule rule, switched on once a pass is loaded",
    allowed="a rule name",
)
REPAIR_STOP_MARGIN_SECONDS = var(
    "REPAIR_STOP_MARGIN_SECONDS",
    int,
    "The repair starts no new part of its source with less than this left (> one part's load)",
    300,
    ge=30,
    le=900,
)

# Every variable declared; one name may be read two ways (INDEX_RULE_NAME: required by the
# repair, optional for batch-check), each a Var of its own.
ALL_VARS: tuple[Var, ...] = tuple(
    v for v in [*globals().values(), *SERVICE_URLS.values()] if isinstance(v, Var)
)
# Every variable by name: the first declared of a name.
VARS: dict[str, Var] = {}
for _v in ALL_VARS:
    VARS.setdefault(_v.name, _v)
