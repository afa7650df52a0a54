"""`reingest ids from-inventory` and the inventory reader against moto's S3."""

from __future__ import annotations

import hashlib
import sys

import boto3
import pytest

from devtools import inventory
from devtools.inventory import Row
from devtools.servers import aws_environment
from grid_reingest.adapters.inventory_manifest import (
    InventoryError,
    parse_s3_url,
    read_manifest,
)
from grid_reingest.adapters.s3_inventory import InventoryReader
from grid_reingest.domain.grid_keys import KeyRule
from grid_reingest_cli.main import main

SOURCE = "media-images"
INVENTORY = "inventory-bucket"
DAY = "images/media-images/all/2026-11-29T01-00Z"


def image_id(n: int) -> str:
    return hashlib.sha1(f"inventory {n}".encode()).hexdigest()


def key(image: str, instance: str | None = None) -> str:
    return KeyRule(instance).key_of(image)


IDS = [image_id(n) for n in range(60)]
NOISE = [
    "thumbs/my photo+1.jpg",  # URL-encoded in CSV: thumbs%2Fmy+photo%2B1.jpg
    "optimised/" + key(IDS[0]),
    "0/1/2/3/4/5/" + IDS[1],
    "README.txt",
]


@pytest.fixture
def s3(aws):
    client = boto3.client("s3", endpoint_url=aws)
    for bucket in (INVENTORY,):
        client.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
    return client


def put_report(s3, folder: str, files: list[tuple[str, bytes]], **manifest_args) -> str:
    """Data files and their manifest under `folder`; the manifest's URL."""
    for name, body in files:
        s3.put_object(Bucket=INVENTORY, Key=name, Body=body)
    body = inventory.manifest(SOURCE, files, **manifest_args)
    s3.put_object(Bucket=INVENTORY, Key=f"{folder}/manifest.json", Body=body)
    s3.put_object(
        Bucket=INVENTORY, Key=f"{folder}/manifest.checksum", Body=inventory.md5(body) + "\n"
    )
    return f"s3://{INVENTORY}/{folder}/manifest.json"


def csv_report(s3) -> str:
    # Two CSV files: one plain, one of all versions (older versions and a delete marker)
    first = inventory.csv_gz(SOURCE, [key(i) for i in IDS[:30]] + NOISE)
    rows = [Row(key(i)) for i in IDS[30:]]
    rows += [Row(key(IDS[30]), is_latest=False), Row(key(image_id(999)), is_delete_marker=True)]
    second = inventory.csv_gz(SOURCE, rows, schema=inventory.VERSIONED_CSV_SCHEMA)
    files = [(f"{DAY}/data/one.csv.gz", first), (f"{DAY}/data/two.csv.gz", second)]
    # One manifest has one schema: the second file's columns are those of the first plus
    # versions; S3 writes one schema per report, so each gets its own report here.
    url = put_report(s3, DAY, files[:1])
    put_report(s3, DAY + "-v", files[1:], schema=inventory.VERSIONED_CSV_SCHEMA)
    return url


def test_from_inventory_reads_a_csv_report_with_the_key_rule(s3, tmp_path, capsys):
    # Given a CSV report with originals and noise, some keys URL-encoded
    url = csv_report(s3)
    out = tmp_path / "ids.txt"
    # When its ids are read
    assert main(["ids", "from-inventory", url, "--output", str(out)]) == 0
    # Then the originals' ids are written, and the rest counted by kind, keys decoded
    assert sorted(out.read_text().splitlines()) == sorted(IDS[:30])
    err = capsys.readouterr().err
    assert "inventory of s3://media-images, made 2025-11-29 00:00 UTC" in err
    assert "days old: images stored since are not in it" in err
    assert "1 CSV file(s)" in err
    assert "folders do not match the id" in err
    assert "'thumbs/my photo+1.jpg'" in err
    assert "not the Grid's layout (e.g. 'README.txt')" in err


def test_from_inventory_leaves_out_older_versions_and_delete_markers(s3, capsys):
    csv_report(s3)
    url = f"s3://{INVENTORY}/{DAY}-v/manifest.json"
    assert main(["ids", "from-inventory", url]) == 0
    captured = capsys.readouterr()
    assert sorted(captured.out.splitlines()) == sorted(IDS[30:])
    assert "left out 1 row(s): an older version" in captured.err
    assert "left out 1 row(s): a delete marker" in captured.err


@pytest.mark.parametrize("file_format", ["Parquet", "ORC"])
def test_from_inventory_reads_parquet_and_orc_reports(s3, capsys, file_format):
    # Given a report of two files in a columnar format, an older version in one
    rows = [Row(key(i)) for i in IDS[:20]] + [Row(key(IDS[40]), is_latest=False)]
    files = [
        (f"{DAY}/data/a.{file_format.lower()}", inventory.arrow_file(SOURCE, rows, file_format)),
        (
            f"{DAY}/data/b.{file_format.lower()}",
            inventory.arrow_file(SOURCE, [key(i) for i in IDS[20:40]] + NOISE, file_format),
        ),
    ]
    url = put_report(s3, DAY, files, file_format=file_format, schema=inventory.PARQUET_SCHEMA)
    # When read, Then both files' originals come, the older version and the noise left out
    assert main(["ids", "from-inventory", url]) == 0
    captured = capsys.readouterr()
    assert sorted(captured.out.splitlines()) == sorted(IDS[:40])
    assert f"2 {file_format} file(s)" in captured.err
    assert "left out 1 row(s): an older version" in captured.err
    assert "'thumbs/my photo+1.jpg'" in captured.err


def test_from_inventory_refuses_a_file_whose_md5_does_not_match_and_names_it(s3, tmp_path, capsys):
    # Given a report whose second file changed after the manifest was written
    good = inventory.csv_gz(SOURCE, [key(i) for i in IDS[:10]])
    bad = inventory.csv_gz(SOURCE, [key(i) for i in IDS[10:20]])
    files = [(f"{DAY}/data/good.csv.gz", good), (f"{DAY}/data/bad.csv.gz", bad)]
    url = put_report(s3, DAY, files)
    damaged = bad[:-9] + bytes([bad[-9] ^ 0xFF]) + bad[-8:]  # same size, one byte flipped
    s3.put_object(Bucket=INVENTORY, Key=f"{DAY}/data/bad.csv.gz", Body=damaged)
    out = tmp_path / "ids.txt"
    # When read, Then it is refused with exit 2, naming the file; no output file is left
    assert main(["ids", "from-inventory", url, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"s3://{INVENTORY}/{DAY}/data/bad.csv.gz: refused" in err
    assert "MD5" in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_inventory_reader_never_yields_a_key_of_a_refused_file(s3):
    body = inventory.csv_gz(SOURCE, [key(i) for i in IDS])
    url = put_report(s3, DAY, [(f"{DAY}/data/x.csv.gz", body)])
    s3.put_object(Bucket=INVENTORY, Key=f"{DAY}/data/x.csv.gz", Body=body + b"tail")
    manifest = read_manifest(s3, *parse_s3_url(url))
    reader = InventoryReader(s3, manifest)
    with pytest.raises(InventoryError, match=r"x\.csv\.gz: refused"):
        next(reader.pages())


def test_inventory_reader_reads_many_files_with_downloads_ahead(s3, tmp_path):
    # Given a report of 7 files read with 3 downloads ahead, in pages of 4 keys
    files = [
        (f"{DAY}/data/{n}.csv.gz", inventory.csv_gz(SOURCE, [key(i) for i in IDS[n::7]]))
        for n in range(7)
    ]
    url = put_report(s3, DAY, files)
    reader = InventoryReader(
        s3, read_manifest(s3, *parse_s3_url(url)), prefetch=3, workdir=str(tmp_path), page_keys=4
    )
    keys = [k for page in reader.pages() for k in page]
    # Then every key comes once, files in the manifest's order, and no local file is left
    assert keys == [key(i) for n in range(7) for i in IDS[n::7]]
    assert reader.files_read == 7
    assert list(tmp_path.iterdir()) == []


def test_from_inventory_applies_the_instance(s3, capsys):
    body = inventory.csv_gz(
        SOURCE, [key(i, "guardian") for i in IDS[:5]] + [key(i) for i in IDS[5:9]]
    )
    url = put_report(s3, DAY, [(f"{DAY}/data/x.csv.gz", body)])
    assert main(["ids", "from-inventory", url, "--instance", "guardian"]) == 0
    captured = capsys.readouterr()
    assert sorted(captured.out.splitlines()) == sorted(IDS[:5])
    assert "4  not under the instance's prefix" in captured.err
    assert main(["ids", "from-inventory", url]) == 0
    captured = capsys.readouterr()
    assert sorted(captured.out.splitlines()) == sorted(IDS[5:9])
    assert "an original's layout under an instance prefix" in captured.err
    assert "--instance NAME" in captured.err


def _put(s3, key_: str, body: bytes) -> str:
    s3.put_object(Bucket=INVENTORY, Key=key_, Body=body)
    return f"s3://{INVENTORY}/{key_}"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda s3: "http://inventory-bucket/x/manifest.json", "is not an S3 URL"),
        (lambda s3: "s3://", "'' is not an S3 bucket name"),
        (lambda s3: "s3://Inventory_Bucket/m.json", "is not an S3 bucket name"),
        (lambda s3: f"s3://{INVENTORY}/", "names no file"),
        (lambda s3: f"s3://{INVENTORY}/x/manifest.json", "x/manifest.json: no such manifest"),
        (lambda s3: "s3://no-such-bucket/manifest.json", "no such bucket"),
        (
            lambda s3: _put(s3, "m/manifest.json", b'{"fileFormat": "CSV",'),
            "not a manifest: bad JSON at line 1 column 22",
        ),
        (lambda s3: _put(s3, "m/manifest.json", b"[1, 2]"), "not a manifest: a JSON list"),
        (
            lambda s3: _put(
                s3, "m/manifest.json", inventory.manifest(SOURCE, [], file_format="JSON")
            ),
            "fileFormat 'JSON' is not one S3 Inventory writes (CSV, Parquet, ORC)",
        ),
        (
            lambda s3: _put(
                s3, "m/manifest.json", inventory.manifest(SOURCE, [], schema="Bucket, Size")
            ),
            "has no Key column",
        ),
        (
            lambda s3: _put(
                s3,
                "m/manifest.json",
                inventory.manifest(SOURCE, [("d/x.csv.gz", b"")]).replace(
                    b'"MD5checksum"', b'"md5"'
                ),
            ),
            "files[0] (d/x.csv.gz): MD5checksum None is not 32 hex characters",
        ),
        (
            lambda s3: _put(s3, "m/manifest.json", inventory.manifest(SOURCE, [("d/x", b"1")])),
            f"s3://{INVENTORY}/d/x: the manifest lists this file but it is not there",
        ),
    ],
)
def test_from_inventory_refuses_bad_input_with_exit_2(s3, capsys, setup, message):
    url = setup(s3)
    assert main(["ids", "from-inventory", url]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_from_inventory_refuses_a_manifest_that_its_checksum_file_contradicts(s3, capsys):
    url = put_report(s3, DAY, [(f"{DAY}/data/x.csv.gz", inventory.csv_gz(SOURCE, []))])
    s3.put_object(Bucket=INVENTORY, Key=f"{DAY}/manifest.checksum", Body=b"0" * 32)
    assert main(["ids", "from-inventory", url]) == 2
    assert "manifest.checksum beside it says 000" in capsys.readouterr().err


def test_from_inventory_of_parquet_without_pyarrow_says_what_to_install(s3, monkeypatch, capsys):
    # Given a Parquet report and an installation without pyarrow
    rows = [key(i) for i in IDS[:3]]
    url = put_report(
        s3,
        DAY,
        [(f"{DAY}/data/a.parquet", inventory.arrow_file(SOURCE, rows, "Parquet"))],
        file_format="Parquet",
        schema=inventory.PARQUET_SCHEMA,
    )
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    # When read, Then it stops before downloading anything, saying what to install
    assert main(["ids", "from-inventory", url]) == 2
    err = capsys.readouterr().err
    assert "lists Parquet files: reading them needs pyarrow" in err
    assert "grid-reingest[inventory]" in err


def test_from_inventory_bare_prints_its_usage(capsys):
    assert main(["ids", "from-inventory"]) == 2
    assert "usage: reingest ids from-inventory" in capsys.readouterr().err


def test_aws_environment_is_the_emulator(aws):
    # The report fixtures rely on boto3 finding moto through the environment.
    assert aws_environment(aws)["AWS_ENDPOINT_URL"] == aws
