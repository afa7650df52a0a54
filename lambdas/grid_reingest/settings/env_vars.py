"""Every variable a function reads, by name: the CDK app imports these to wire the Lambdas."""

from __future__ import annotations

import re
from dataclasses import replace as _replace

from grid_reingest.domain.states import ProgressState
from grid_reingest.settings.var import (
    Var,
    boolean,
    fraction,
    integer,
    names_list,
    text,
    worker_state,
)

# Kinesis's limit on one record: data plus partition key.
KINESIS_RECORD_MAX_BYTES = 1024 * 1024


STAGE = Var("STAGE", "Stage name, a dimension of every metric", text, "any word", "DEV")
STATE_TABLE_NAME = Var("STATE_TABLE_NAME", "The state table's name", text, "a table name")

GRID_DOMAIN_ROOT = Var(
    "GRID_DOMAIN_ROOT",
    "The Grid's domain root; each service is https://<prefix><root>",
    text,
    "a domain name, e.g. media.example.org",
    optional=True,
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
GRID_API_KEY_PARAMETER = Var(
    "GRID_API_KEY_PARAMETER",
    "SSM SecureString parameter holding the Grid API key",
    text,
    "a parameter name",
    optional=True,
)
GRID_API_KEY_SECRET = Var(
    "GRID_API_KEY_SECRET",
    "Secrets Manager secret holding the Grid API key",
    text,
    "a secret name or ARN",
    optional=True,
)
GRID_API_KEY = Var(
    "GRID_API_KEY",
    "The Grid API key itself: local runs only, refused inside Lambda",
    str,
    "a key",
    optional=True,
)
GRID_LOADER_TIMEOUT_SECONDS = Var(
    "GRID_LOADER_TIMEOUT_SECONDS",
    "How long one call to image-loader may take in all (connecting, retries, the whole body)",
    integer(1, 900),
    "1..900",
    "300",
)
GRID_SERVICE_TIMEOUT_SECONDS = Var(
    "GRID_SERVICE_TIMEOUT_SECONDS",
    "How long one call to any other Grid service may take in all (connecting, retries, body)",
    integer(1, 120),
    "1..120",
    "10",
)
# Body caps. A projected image must fit one Kinesis record (1 MiB, gzipped);
# gzip rarely shrinks the Grid's JSON more than ~10x, so an image-loader answer
# above 16 MiB could hardly ever be published, while 16 MiB of JSON parses into
# about 80 MB of Python objects (~5x, measured on the simulated Grid's images):
# well within image-projection's memory. The data services' answers (leases,
# usages, crops, edits) are merged into that same image, so each is held to a
# quarter of it. The smallest cap allowed is one read chunk (64 KiB).
_BODY_BYTES = integer(64 * 1024, 256 * 1024 * 1024)
GRID_MAX_LOADER_BODY_BYTES = Var(
    "GRID_MAX_LOADER_BODY_BYTES",
    "Largest image-loader answer read (bytes); a larger one fails the image, unread",
    _BODY_BYTES,
    "65536..268435456",
    str(16 * 1024 * 1024),
)
GRID_MAX_SERVICE_BODY_BYTES = Var(
    "GRID_MAX_SERVICE_BODY_BYTES",
    "Largest answer of any other Grid service read (bytes); a larger one fails the call, unread",
    _BODY_BYTES,
    "65536..268435456",
    str(4 * 1024 * 1024),
)
GRID_CONCURRENCY = Var(
    "GRID_CONCURRENCY",
    "Images worked on at once towards the Grid",
    integer(1, 256),
    "1..256",
    "32",
)
MAX_MESSAGE_BYTES = Var(
    "MAX_MESSAGE_BYTES",
    "Largest Kinesis record (data + partition key); bigger images go to 9001",
    integer(1024, KINESIS_RECORD_MAX_BYTES),
    f"1024..{KINESIS_RECORD_MAX_BYTES}",
    str(KINESIS_RECORD_MAX_BYTES),
)
INDEX_START_STATE = Var(
    "INDEX_START_STATE",
    "The state batch-index takes ids from",
    worker_state(ProgressState.ENQUEUED),
    "a state number other than 1, 3 and 5",
    "0",
)
CHECK_START_STATE = Var(
    "CHECK_START_STATE",
    "The state batch-check takes ids from",
    worker_state(ProgressState.NOT_STARTED),
    "a state number other than 0, 1 and 5",
    "3",
)
CHECK_MIN_AGE_SECONDS = Var(
    "CHECK_MIN_AGE_SECONDS",
    "Only check images enqueued at least this long before the records thrall is reaching "
    "(its lag as batch-index last judged it is added)",
    integer(0, 86400),
    "0..86400",
    "120",
)
MAX_ATTEMPTS = Var(
    "MAX_ATTEMPTS",
    "Failures of one image before it is left at state 8",
    integer(1, 100),
    "1..100",
    "3",
)
CLAIM_LEASE_SECONDS = Var(
    "CLAIM_LEASE_SECONDS",
    "Age after which a claim is taken to belong to a dead worker; must exceed the Lambda timeout",
    integer(60, 86400),
    "60..86400",
    "1200",
)
STOP_MARGIN_SECONDS = Var(
    "STOP_MARGIN_SECONDS",
    "Stop starting images when the invocation has less than this left "
    "(> PROJECTION_TIMEOUT_SECONDS + RECORD_BUDGET_SECONDS)",
    integer(1, 900),
    "1..900",
    "480",
)
THRALL_STREAM_NAME = Var(
    "THRALL_STREAM_NAME",
    "thrall's low-priority Kinesis stream (name or ARN)",
    text,
    "a stream name or ARN",
)
BACKPRESSURE_STREAMS = Var(
    "BACKPRESSURE_STREAMS",
    "Streams whose iterator age is watched (comma-separated names)",
    names_list,
    "stream names",
    optional=True,
)
# DynamoDB's rule for a table name.
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")


def dynamodb_table_name(raw: str) -> str:
    """A DynamoDB table name as DynamoDB allows it, or ValueError."""
    if not _TABLE_NAME.fullmatch(raw):
        raise ValueError("is not a DynamoDB table name")
    return raw


THRALL_CHECKPOINT_TABLE = Var(
    "THRALL_CHECKPOINT_TABLE",
    "thrall's KCL lease table (its checkpoints: a fresher view of its progress than "
    "CloudWatch's iterator age); unset: CloudWatch's only",
    dynamodb_table_name,
    "a DynamoDB table name: 3-255 of A-Z a-z 0-9 _ . -",
    optional=True,
)
MAX_ITERATOR_AGE_MS = Var(
    "MAX_ITERATOR_AGE_MS",
    "Take no work while thrall's iterator age is above this",
    integer(0, 7 * 24 * 3600 * 1000),
    "0..604800000",
    "60000",
)
SCHEDULE_RULE_NAME = Var(
    "SCHEDULE_RULE_NAME",
    "The EventBridge rule this worker switches off when its work is done",
    text,
    "a rule name",
    optional=True,
)
PROJECTION_FUNCTION_NAME = Var(
    "PROJECTION_FUNCTION_NAME",
    "image-projection Lambda to invoke; unset: project in-process (local runs)",
    text,
    "a function name or ARN",
    optional=True,
)
BREAKER_FAILURE_SHARE = Var(
    "BREAKER_FAILURE_SHARE",
    "Stop the batch when more than this share of finished images failed for one reason",
    fraction,
    "0 < x <= 1",
    "0.5",
)
BREAKER_MIN_RESULTS = Var(
    "BREAKER_MIN_RESULTS",
    "Finished images needed before the breaker may trip",
    integer(1, 5000),
    "1..5000",
    "20",
)
MAX_IN_FLIGHT = Var(
    "MAX_IN_FLIGHT",
    "Most images batch-index has in flight at once (the controller stays under it)",
    integer(1, 1024),
    "1..1024",
    "32",
)
CHECK_MAX_IN_FLIGHT = Var(
    "CHECK_MAX_IN_FLIGHT",
    "Most images batch-check asks media-api about at once",
    integer(1, 256),
    "1..256",
    "8",
)
PROJECTION_TIMEOUT_SECONDS = Var(
    "PROJECTION_TIMEOUT_SECONDS",
    "Longest one projection may take (image-projection's timeout)",
    integer(1, 900),
    "1..900",
    "300",
)
# After its last work returns, a worker still publishes what it holds (one
# PutRecords call) and records each outcome (conditional UpdateItems in
# parallel), each with botocore's standard retries as adapters/aws.py sets them:
# 10 attempts, backoff capped at 20 s, so at most 1 + 2 + 4 + 8 + 16 + 4 x 20 =
# 111 s of waiting; 120 s covers that and the calls themselves.
RECORD_BUDGET_SECONDS = Var(
    "RECORD_BUDGET_SECONDS",
    "Time kept, after the last work can finish, to publish and record what a worker holds",
    integer(1, 300),
    "1..300",
    "120",
)
CHECK_STOP_MARGIN_SECONDS = Var(
    "CHECK_STOP_MARGIN_SECONDS",
    "batch-check stops starting lookups with less than this left (> service timeout + budget)",
    integer(1, 900),
    "1..900",
    "150",
)
PACE_REFRESH_SECONDS = Var(
    "PACE_REFRESH_SECONDS",
    "How often a running worker reads the control item (pause, ceilings) and steps the "
    "controller; a worker that can start nothing this long ends its invocation",
    integer(1, 300),
    "1..300",
    "15",
)
DRY_RUN = Var(
    "DRY_RUN",
    "Claim, project and size-check, publish nothing, put every id back",
    boolean,
    "true or false",
    "false",
)


# -- the scheduled repair ------------------------------------------------------------------


def _s3_prefix_url(raw: str) -> str:
    bucket = raw[len("s3://") :].split("/", 1)[0] if raw.startswith("s3://") else ""
    if not bucket:
        raise ValueError("is not s3://BUCKET/PREFIX/")
    return raw


REPAIR_SOURCE_BUCKET = Var(
    "REPAIR_SOURCE_BUCKET",
    "The Grid's image bucket the scheduled repair lists (else REPAIR_INVENTORY_URL)",
    text,
    "a bucket name",
    optional=True,
)
REPAIR_INVENTORY_URL = Var(
    "REPAIR_INVENTORY_URL",
    "Where the image bucket's S3 Inventory reports are: the repair reads the newest manifest.json "
    "under it (else REPAIR_SOURCE_BUCKET)",
    _s3_prefix_url,
    "s3://BUCKET/PREFIX/",
    optional=True,
)
REPAIR_INSTANCE = Var(
    "REPAIR_INSTANCE",
    "A multi-instance Grid's instance: originals under <instance>/a/b/c/d/e/f/<id>",
    text,
    "an instance name",
    optional=True,
)
REPORT_TOPIC_ARN = Var(
    "REPORT_TOPIC_ARN",
    "The SNS topic a pass's report (and a refused scheduled run) is published on",
    text,
    "an SNS topic ARN",
    optional=True,
)
INDEX_RULE_NAME = Var(
    "INDEX_RULE_NAME",
    "batch-index's schedule rule, switched on once a pass is loaded",
    text,
    "a rule name",
)
# batch-check's view of batch-index's rule: optional (a check that sends nothing back).
WAKE_INDEX_RULE_NAME = _replace(
    INDEX_RULE_NAME,
    help="batch-index's schedule rule, switched on when a check-first item goes back to it",
    optional=True,
)
CHECK_RULE_NAME = Var(
    "CHECK_RULE_NAME",
    "batch-check's schedule rule, switched on once a pass is loaded",
    text,
    "a rule name",
)
REPAIR_STOP_MARGIN_SECONDS = Var(
    "REPAIR_STOP_MARGIN_SECONDS",
    "The repair starts no new part of its source with less than this left (> one part's load)",
    integer(30, 900),
    "30..900",
    "300",
)
