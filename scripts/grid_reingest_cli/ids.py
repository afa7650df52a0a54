"""reingest ids from-bucket / from-inventory / diff: where a file of image ids comes from."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from grid_reingest.adapters.inventory_manifest import (
    InventoryError,
    parse_s3_url,
    read_manifest,
    require_reader,
)
from grid_reingest.adapters.s3_inventory import InventoryReader
from grid_reingest.adapters.s3_listing import DEFAULT_THREADS, BucketListing, is_bucket_name
from grid_reingest.domain.grid_keys import (
    InvalidKeyRuleInput,
    KeyRule,
    Skip,
    Tally,
    check_hex_prefix,
    original_ids,
)
from grid_reingest_cli import clients, ids_diff
from grid_reingest_cli.common import OK, USAGE, CliError, add_account_options, int_between
from grid_reingest_cli.ids_output import (
    add_output_file_options,
    check_output_file,
    output_name,
    say,
    write_ids,
)
from grid_reingest_cli.progress import Progress

GROUP = """\
Make a file of image ids (one per line) for `reingest upload-ids` or `run`:
from the Grid's image bucket, from its S3 Inventory, or the ids of one file
that are not in another. Each writes to --output FILE or to stdout (-), in
bounded memory at any size, with progress on a terminal, and says on stderr at
the end what it left out, by kind.
"""
FROM_BUCKET = f"""\
List the Grid's image bucket and write the id of every original in it.

The Grid stores an original under its id's first six characters as folders,
then the id: a/b/c/d/e/f/abcdef… (under <instance>/ in a multi-instance Grid:
--instance). Only keys of that layout whose last part is a Grid id (40
lower-case hex characters) and whose folders are that id's first six
characters are kept; every other key is counted by kind and left out. Folders
at the top that cannot hold originals (optimised/, thumbs/, other instances)
are named, not listed.

The hex folders are listed in parallel (--parallel threads, each walking its
own key range; 256 ranges over the bucket), so ids come out in no particular
order. Each list request returns up to 1,000 keys: a bucket of 10M images
takes 10,000 requests (about $0.05). For tens of millions of images, an S3
Inventory report is cheaper and faster to read: see from-inventory.

--prefix HEX lists only ids that start with HEX (e.g. --prefix 0 for a
sixteenth of the bucket: a trial run, or one share of a split).
Default --parallel {DEFAULT_THREADS}.
"""
FROM_INVENTORY = """\
Read an S3 Inventory report of the Grid's image bucket and write the id of
every original it lists, by the same rule as from-bucket.

MANIFEST is the report's manifest.json (s3://BUCKET/PATH/manifest.json, in the
inventory's destination bucket). It names data files, their format and each
file's MD5. Every data file is downloaded (the next --prefetch files while one
is read; they wait on disk, in TMPDIR) and read only once its size and MD5
match the manifest: a file that does not is refused, naming it (with --output
-, the ids of the files before it are already written). CSV files (gzip, keys
URL-encoded) need nothing more; Parquet and ORC files need pyarrow
(pip install 'grid-reingest[inventory]'). In an inventory of all versions,
older versions and delete markers are left out and counted.

An inventory is as old as its report (daily or weekly): images stored since
are not in it.
"""
EPILOG = """\
examples:
  reingest ids from-bucket media-service-images --output ids.txt
  reingest ids from-bucket media-service-images --instance guardian --prefix 0 --output -
  reingest ids from-inventory s3://inventory/images/2026-11-29T01-00Z/manifest.json \\
      --output ids.txt
  reingest ids diff bucket-ids.txt indexed-ids.txt --output missing.txt

exit codes: 0 done; 1 AWS failed (no partial file is left); 2 bad arguments or
input, a data file whose MD5 does not match, an OUTPUT that cannot be written;
130 interrupted; 141 the output was closed (| head)
"""
# An inventory older than this is named in the summary.
STALE_INVENTORY_DAYS = 2

# Beyond these a value is a typo: threads listing at once, data files downloaded ahead.
MAX_LIST_WORKERS = 1024
MAX_PREFETCH = 16


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """`reingest ids` and its commands."""
    group = subparsers.add_parser(
        "ids",
        help="make a file of image ids: from the image bucket, its inventory, or a difference",
        description=GROUP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = group.add_subparsers(title="commands", metavar="COMMAND", required=True)
    bucket = _add_command(commands, "from-bucket", FROM_BUCKET, "list the image bucket's ids")
    bucket.add_argument("bucket", metavar="BUCKET", help="the Grid's image bucket (its name)")
    bucket.add_argument(
        "--prefix", metavar="HEX", help="only ids starting with these hex characters"
    )
    bucket.add_argument(
        "--parallel",
        "--workers",
        dest="parallel",
        type=int_between(1, MAX_LIST_WORKERS),
        default=DEFAULT_THREADS,
        metavar="N",
        help=f"list requests at once (default {DEFAULT_THREADS}); --workers is its former name",
    )
    bucket.set_defaults(run=run_from_bucket)
    inventory = _add_command(
        commands, "from-inventory", FROM_INVENTORY, "read the ids of an S3 Inventory report"
    )
    inventory.add_argument("manifest", metavar="MANIFEST", help="s3://BUCKET/PATH/manifest.json")
    inventory.add_argument(
        "--prefetch",
        type=int_between(1, MAX_PREFETCH),
        default=2,
        help="data files downloaded ahead of the one being read (default 2)",
    )
    inventory.set_defaults(run=run_from_inventory)
    ids_diff.add_parser(commands)


def _add_command(
    commands: argparse._SubParsersAction, name: str, text: str, summary: str
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        help=summary,
        description=text,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--instance",
        metavar="NAME",
        help="a multi-instance Grid's instance: its originals are under NAME/",
    )
    add_output_file_options(parser)
    add_account_options(parser.add_argument_group("AWS"))
    return parser


def run_from_bucket(args: argparse.Namespace) -> int:
    rule = _rule(args)
    hex_prefix = _hex_prefix(args.prefix)
    if not is_bucket_name(args.bucket):
        hint = " (give the bucket's name, not a URL)" if "/" in args.bucket else ""
        raise CliError(f"{args.bucket!r} is not an S3 bucket name{hint}", USAGE)
    check_output_file(args)
    s3 = clients.client(args, "s3", max_pool_connections=args.parallel + 1)
    listing = BucketListing(s3, args.bucket, rule, hex_prefix, threads=args.parallel)
    where = f"s3://{args.bucket}/{listing.rule.listing_prefix(hex_prefix)}"
    tally = Tally()
    started = time.monotonic()
    with _no_such_bucket(args.bucket):
        written = write_ids(_ids(listing.pages(), rule, tally, f"listing {where}"), args.output)
    seconds = time.monotonic() - started
    say(
        f"{where}: {written:,} id(s) written to {output_name(args.output)} in {seconds:,.1f} s "
        f"({tally.keys:,} key(s) listed, {tally.keys / max(seconds, 1e-9):,.0f} a second, "
        f"{listing.ranges} key range(s), {args.parallel} at once)"
    )
    _say_skipped(tally)
    if listing.left_out:
        shown = ", ".join(listing.left_out[:10]) + (" ..." if len(listing.left_out) > 10 else "")
        say(f"not listed: {len(listing.left_out):,} folder(s) that hold no originals: {shown}")
    if args.instance is None and (listing.left_out or tally.skipped[Skip.INSTANCE_PREFIX]):
        say(
            "hint: a multi-instance Grid keeps each instance's originals under its name: "
            "list one with --instance NAME"
        )
    return OK


def run_from_inventory(args: argparse.Namespace) -> int:
    rule = _rule(args)
    try:
        bucket, key = parse_s3_url(args.manifest)
    except InventoryError as error:
        raise CliError(str(error), USAGE) from None
    check_output_file(args)
    s3 = clients.client(args, "s3", max_pool_connections=args.prefetch + 1)
    tally = Tally()
    started = time.monotonic()
    with _inventory_errors():
        manifest = read_manifest(s3, bucket, key)
        require_reader(manifest)
        say(
            f"inventory of s3://{manifest.source_bucket}{_made(manifest.created_ms)}: "
            f"{len(manifest.files):,} {manifest.file_format} file(s), "
            f"{manifest.total_bytes / 2**20:,.1f} MiB"
        )
        reader = InventoryReader(s3, manifest, prefetch=args.prefetch)
        label = f"reading {len(manifest.files):,} {manifest.file_format} file(s)"
        written = write_ids(_ids(reader.pages(), rule, tally, label), args.output)
    seconds = time.monotonic() - started
    say(
        f"{written:,} id(s) written to {output_name(args.output)} in {seconds:,.1f} s "
        f"({tally.keys:,} key(s) read, {tally.keys / max(seconds, 1e-9):,.0f} a second)"
    )
    for what, count in reader.skipped.most_common():
        say(f"left out {count:,} row(s): {what}")
    _say_skipped(tally)
    if args.instance is None and tally.skipped[Skip.INSTANCE_PREFIX]:
        say("hint: list one instance's originals with --instance NAME")
    return OK


def _ids(
    pages: Iterable[list[str]], rule: KeyRule, tally: Tally, label: str
) -> Iterator[list[str]]:
    """Pages of keys, as pages of the ids of their originals; a progress line on a terminal."""
    progress = Progress(None, label)
    try:
        for keys in pages:
            progress.advance(len(keys))
            yield list(original_ids(keys, rule, tally))
    finally:
        progress.close()


def _rule(args: argparse.Namespace) -> KeyRule:
    try:
        return KeyRule(args.instance)
    except InvalidKeyRuleInput as error:
        raise CliError(f"--instance: {error}", USAGE) from None


def _hex_prefix(text: str | None) -> str:
    if text is None:
        return ""
    try:
        return check_hex_prefix(text)
    except InvalidKeyRuleInput as error:
        raise CliError(f"--prefix: {error}", USAGE) from None


@contextmanager
def _no_such_bucket(bucket: str) -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise CliError(f"s3://{bucket}: no such bucket (NoSuchBucket)", USAGE) from None
        raise


@contextmanager
def _inventory_errors() -> Iterator[None]:
    try:
        yield
    except InventoryError as error:
        raise CliError(str(error), USAGE) from None


def _say_skipped(tally: Tally) -> None:
    left_out = sum(tally.skipped.values())
    if left_out:
        say(f"left out {left_out:,} key(s) that are not originals:")
        for line in tally.lines():
            say(line)


def _made(created_ms: int | None) -> str:
    if created_ms is None:
        return ""
    made = datetime.fromtimestamp(created_ms / 1000, UTC)
    age = datetime.now(UTC) - made
    stale = (
        f"; {age.days} days old: images stored since are not in it"
        if age.days >= STALE_INVENTORY_DAYS
        else ""
    )
    return f", made {made:%Y-%m-%d %H:%M} UTC{stale}"
