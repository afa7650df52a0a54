"""The figures `reingest plan` prices a pass with, each with where it comes from.

List prices change: each carries the date it was taken and its source, and the
plan prints them so that an operator can check them before trusting a total.
Region: EU (Ireland), eu-west-1, where the Grid's stacks run (cdk.json).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str
    source: str


# -- prices -----------------------------------------------------------------------

DYNAMODB_WRITE_UNIT = Figure(
    0.70675 / 1e6,
    "USD per on-demand write request unit, eu-west-1",
    "Amazon DynamoDB pricing, on-demand: $1.4135 per million WRU in EU (Ireland) halved by "
    "AWS's on-demand price reduction of 1 November 2024 (recorded November 2026; check the page)",
)
DYNAMODB_READ_UNIT = Figure(
    0.1415 / 1e6,
    "USD per on-demand read request unit, eu-west-1",
    "Amazon DynamoDB pricing, on-demand: $0.283 per million RRU in EU (Ireland) halved on "
    "1 November 2024 (recorded November 2026; check the page)",
)
LAMBDA_GB_SECOND = Figure(
    0.0000133334,
    "USD per GB-second, arm64 (Graviton), first 7.5 billion GB-s a month",
    "AWS Lambda pricing, EU (Ireland), Arm price: $0.0000133334 per GB-second; the stack "
    "deploys every function on arm64 (recorded December 2026; check the page)",
)
LAMBDA_GB_SECOND_X86 = Figure(
    0.0000166667,
    "USD per GB-second, x86, first 6 billion GB-s a month",
    "AWS Lambda pricing, EU (Ireland), x86 price: $0.0000166667 per GB-second; used only for "
    "a function deployed on x86 (recorded December 2026; check the page)",
)
LAMBDA_REQUEST = Figure(
    0.20 / 1e6,
    "USD per invocation",
    "AWS Lambda pricing: $0.20 per million requests (recorded November 2026; check the page)",
)
CLOUDWATCH_REQUEST = Figure(
    0.01 / 1000,
    "USD per GetMetricStatistics request",
    "Amazon CloudWatch pricing, API requests: $0.01 per 1,000 requests (recorded December "
    "2026; check the page)",
)
KINESIS_PUT_PAYLOAD_UNIT = Figure(
    0.014 / 1e6,
    "USD per PUT payload unit (25 KB), provisioned stream",
    "Amazon Kinesis Data Streams pricing, provisioned mode: $0.014 per million PUT payload "
    "units, the US East list price (EU (Ireland)'s may differ a little; recorded November "
    "2026; check the page)",
)

# -- DynamoDB's documented behaviour -------------------------------------------------

ON_DEMAND_INITIAL_WRITES_PER_S = Figure(
    4000,
    "write request units a second a new on-demand table sustains",
    "Amazon DynamoDB Developer Guide, 'On-demand capacity mode: initial throughput and "
    "scaling properties': a new on-demand table sustains up to 4,000 writes/s and 12,000 "
    "reads/s, and instantly accommodates up to double its previous peak",
)
KINESIS_PUT_PAYLOAD_BYTES = Figure(
    25 * 1024,
    "bytes in one PUT payload unit",
    "Amazon Kinesis Data Streams pricing: a record is counted in 25 KB payload chunks",
)

# -- what a pass does per image (this project's design) -----------------------------

# Writes to an item that changes its by-state key cost the table one unit and the
# index two (delete the old index entry, put the new): DynamoDB Developer Guide,
# 'Provisioned throughput considerations for global secondary indexes'. Items are
# under 1 KB, one unit each.
UPLOAD_WRITE_UNITS = 2  # a new item: table + index
TRANSITION_WRITE_UNITS = 3  # table + index delete + index put
# 0→1 claim, 1→3 enqueued, 3→5 check claim, 5→6 verified.
TRANSITIONS_PER_IMAGE = 4
# An upload of new ids reads nothing once its first batch found them all new; each claim
# reads a keys-only index page (tens of ids to a 4 KB unit), and completion checks one
# entry a shard: about one unit an image, generously.
READ_UNITS_PER_IMAGE = 1.0

# -- the upload (docs/state-table.md, "Uploads and retries"; docs/benchmarks.md) -------

# New ids go in as PartiQL INSERTs, 25 a call: a batch of 100 new ids is 4 calls, one
# after another, and --parallel batches are in flight at once.
UPLOAD_BATCH_IDS = 100
UPLOAD_CALLS_PER_BATCH = 4
# What one process sends at most, bound by botocore's CPU per call (~70 us an id),
# measured through a 10 ms proxy to the emulator ("State table: upload-ids").
UPLOAD_IDS_PER_S_CPU = 13_000

# -- watching and counting (docs/state-table.md, "Counting items per state") -----------

# One look of `watch`: the tally, the control item, the index asked about idle workers
# (both rules off, the dearest case), measured by `python -m benchmarks watch_cost`.
WATCH_LOOK_READ_UNITS = 17
# One GetMetricStatistics a look (thrall's iterator age).
WATCH_LOOK_CLOUDWATCH_REQUESTS = 1
# watch's and run's default --interval.
WATCH_INTERVAL_S = 60
# state-counts (infra/constants.py): a stream record per write — the upload's insert and
# the four moves 0→1→3→5→6 — in batches of up to 1,000, one batch per stream shard at most
# every 10 s; each batch one transaction of an update and a put (2 write units each).
TALLY_RECORDS_PER_IMAGE = 5
TALLY_BATCH_RECORDS = 1000
TALLY_WINDOW_S = 10
TALLY_WRITE_UNITS_PER_BATCH = 4
TALLY_MEMORY_MB = 256

# -- assumptions (not measured on a real Grid: change them with --projection-seconds) --

# image-loader's re-projection of one original, the time an image is in flight.
PROJECTION_SECONDS = 2.0
# media-api's GET /images/{id}, the time batch-check holds one image.
CHECK_SECONDS = 0.1
# A gzipped reingest-image record: most are well under one 25 KB payload unit.
RECORD_BYTES = 8 * 1024
# One upload call's round trip from an operator's machine to the region.
UPLOAD_ROUND_TRIP_S = 0.03
# Shards of the state table's stream: one per partition of the table, a handful for tens of
# millions of small items. Each sends state-counts a batch every TALLY_WINDOW_S while items
# move, so the tally's cost grows with them.
TALLY_STREAM_SHARDS = 4
# One state-counts invocation: a batch parsed and one transaction.
TALLY_INVOCATION_S = 0.1
# What a Grid took at its own migration: ~1,200 images a minute on three
# image-loader instances (guardian/grid PR #3501).
GRID_REFERENCE_PER_MINUTE = 1200
