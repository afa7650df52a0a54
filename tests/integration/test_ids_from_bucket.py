"""`reingest ids from-bucket` and its listing adapter against moto's S3."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

from devtools.servers import aws_environment, reset_moto
from grid_reingest.adapters.s3_listing import BucketListing, keys_only
from grid_reingest.domain.grid_keys import KeyRule
from grid_reingest_cli.main import main

BUCKET = "images-bucket"


def image_id(n: int, prefix: str = "") -> str:
    digest = hashlib.sha1(str(n).encode()).hexdigest()
    return (prefix + digest)[:40]


def key(image: str, instance: str | None = None) -> str:
    return KeyRule(instance).key_of(image)


# 1,100 originals in one folder (more than a page of one key range), 40 spread out,
# 30 under an instance, and every kind of key that is not an original.
CROWDED = [image_id(n, "000000") for n in range(1100)]
SPREAD = [image_id(n) for n in range(2000, 2040)]
INSTANCE = [image_id(n) for n in range(3000, 3030)]
MISMATCHED = "0/1/2/3/4/5/" + image_id(9)  # the id does not start 012345
NOISE = [
    MISMATCHED,
    "optimised/" + key(SPREAD[0]),
    "optimised/" + key(SPREAD[1]),
    "thumbs/cat.jpg",
    "README.txt",
    "a/b/c/d/e/f/" + image_id(8).upper(),
    key(SPREAD[2]) + ".jpg",
    "a/notes.txt",
    "f/f/",
    "guardian/optimised/" + key(INSTANCE[0]),
    "guardian/README",
]


@pytest.fixture(scope="module")
def images(moto_endpoint):
    """The image bucket, built once for the module (moto is reset before and after)."""
    reset_moto(moto_endpoint)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, **_credentials())
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    keys = [key(i) for i in CROWDED + SPREAD]
    keys += [key(i, "guardian") for i in INSTANCE] + NOISE
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=BUCKET, Key=k, Body=b"x"), keys))
    yield s3
    reset_moto(moto_endpoint)


@pytest.fixture
def env(moto_endpoint, monkeypatch):
    for name, value in aws_environment(moto_endpoint).items():
        monkeypatch.setenv(name, value)


def _credentials() -> dict[str, str]:
    environment = aws_environment()
    return {
        "region_name": environment["AWS_REGION"],
        "aws_access_key_id": environment["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": environment["AWS_SECRET_ACCESS_KEY"],
    }


def ids_in(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_from_bucket_writes_every_original_and_counts_the_rest_by_kind(
    images, env, tmp_path, capsys
):
    # Given the bucket, When its ids are listed
    out = tmp_path / "ids.txt"
    code = main(["ids", "from-bucket", BUCKET, "--output", str(out)])
    # Then every plain original's id is written once, and nothing else
    assert code == 0
    written = ids_in(out)
    assert sorted(written) == sorted(CROWDED + SPREAD)
    # And the keys left out are counted by kind, with an example of each
    err = capsys.readouterr().err
    assert f"{len(written):,} id(s) written to {out}" in err
    assert "folders do not match the id (e.g. '0/1/2/3/4/5/" in err
    assert "last part is not a Grid id" in err
    assert "not the Grid's layout" in err
    # And folders that cannot hold originals are named, not listed
    assert "not listed: 3 folder(s) that hold no originals" in err
    for folder in ("guardian/", "optimised/", "thumbs/"):
        assert folder in err
    assert "--instance NAME" in err


def test_from_bucket_with_an_instance_lists_only_its_originals(
    images, moto_endpoint, monkeypatch, capsys
):
    # Given no emulator in the environment, only in the command's options
    for name, value in aws_environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    code = main(
        [
            *("ids", "from-bucket", BUCKET, "--instance", "guardian"),
            *("--endpoint-url", moto_endpoint, "--region", "eu-west-1"),
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert sorted(captured.out.splitlines()) == sorted(INSTANCE)
    assert "s3://images-bucket/guardian/:" in captured.err
    assert "not listed: 1 folder(s) that hold no originals: guardian/optimised/" in captured.err


def test_from_bucket_with_a_prefix_lists_only_ids_that_start_with_it(images, env, capsys):
    # Given a prefix whose folder holds more than one page of keys
    code = main(["ids", "from-bucket", BUCKET, "--prefix", "000000", "--parallel", "3"])
    # Then all of them come, across pages and key ranges, each once
    assert code == 0
    captured = capsys.readouterr()
    written = captured.out.splitlines()
    assert len(written) == len(set(written)) == len(CROWDED)
    assert set(written) == set(CROWDED)
    assert "1 key range(s), 3 at once" in captured.err


def test_from_bucket_prefix_of_a_folder_also_counts_its_mismatched_keys(images, env, capsys):
    code = main(["ids", "from-bucket", BUCKET, "--prefix", "012345"])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "folders do not match the id" in captured.err


@pytest.mark.parametrize("page_size", [3, 1000])
def test_bucket_listing_covers_every_key_once_whatever_the_page_size(images, page_size):
    # Given key ranges whose pages end anywhere around their bounds
    listing = BucketListing(images, BUCKET, KeyRule(), "0", threads=4, page_size=page_size)
    assert listing.levels == 2
    # When listed
    keys = [k for page in listing.pages() for k in page]
    # Then every key under 0/ is there exactly once
    expected = [k for k in [key(i) for i in CROWDED + SPREAD] + NOISE if k.startswith("0/")]
    assert sorted(keys) == sorted(expected)
    assert listing.ranges == 256


def test_bucket_listing_of_a_whole_bucket_walks_only_hex_folders(images):
    listing = BucketListing(images, BUCKET, KeyRule(), threads=8)
    keys = [k for page in listing.pages() for k in page]
    assert "README.txt" in keys  # keys at the top are passed on, to be counted
    assert not [k for k in keys if k.startswith(("optimised/", "thumbs/", "guardian/"))]
    assert sorted(listing.left_out) == ["guardian/", "optimised/", "thumbs/"]


def test_keys_only_client_reads_every_key_exactly_and_nothing_else(images, moto_endpoint):
    # Given a listing client that keeps only keys, and keys that XML and URLs escape
    s3 = keys_only(boto3.client("s3", endpoint_url=moto_endpoint, **_credentials()))
    odd = ["a/odd & <name> 'q' \"d\".jpg", "a/space +plus%25.jpg", "a/été/ü.jpg"]
    for name in odd:
        s3.put_object(Bucket=BUCKET, Key=name, Body=b"x")
    try:
        # When a page is listed, Then its keys are exact, objects hold nothing else
        page = s3.list_objects_v2(Bucket=BUCKET, Prefix="a/")
        plain = images.list_objects_v2(Bucket=BUCKET, Prefix="a/")
        assert [item["Key"] for item in page["Contents"]] == [
            item["Key"] for item in plain["Contents"]
        ]
        assert set(odd) <= {item["Key"] for item in page["Contents"]}
        assert all(set(item) == {"Key"} for item in page["Contents"])
        # And the rest of the answer is parsed as usual
        page = s3.list_objects_v2(Bucket=BUCKET, Prefix="0/", MaxKeys=2)
        assert page["IsTruncated"] is True and page["NextContinuationToken"]
        assert page["KeyCount"] == 2
        top = s3.list_objects_v2(Bucket=BUCKET, Delimiter="/")
        assert {"Prefix": "optimised/"} in top["CommonPrefixes"]
        with pytest.raises(s3.exceptions.NoSuchBucket):
            s3.list_objects_v2(Bucket="no-such-bucket")
    finally:
        for name in odd:
            s3.delete_object(Bucket=BUCKET, Key=name)


def test_from_bucket_stops_quietly_when_the_reader_goes_away(images, env, monkeypatch, capsys):
    # Given a reader that closes the pipe after the first page
    class ClosingPipe:
        def write(self, text):
            raise BrokenPipeError

        def flush(self):
            pass

        def fileno(self):
            return 1

    monkeypatch.setattr("sys.stdout", ClosingPipe())
    monkeypatch.setattr("os.dup2", lambda *_: None)
    # When listing, Then the command ends with the shell's code for a closed pipe
    assert main(["ids", "from-bucket", BUCKET]) == 141
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["s3://images-bucket"], "is not an S3 bucket name (give the bucket's name, not a URL)"),
        (["Images_Bucket"], "is not an S3 bucket name"),
        (["images-bucket", "--prefix", "ABC"], "--prefix: prefix 'ABC' is not 1 to 40"),
        (["images-bucket", "--prefix", "xyz"], "--prefix: prefix 'xyz'"),
        (["images-bucket", "--instance", "a/b"], "--instance: instance 'a/b' contains '/'"),
        (["no-such-bucket"], "s3://no-such-bucket: no such bucket"),
    ],
)
def test_from_bucket_refuses_bad_input_with_exit_2(images, env, capsys, argv, message):
    assert main(["ids", "from-bucket", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_from_bucket_refuses_an_existing_output_without_force(images, env, tmp_path, capsys):
    out = tmp_path / "ids.txt"
    out.write_text("keep me\n")
    assert main(["ids", "from-bucket", BUCKET, "--prefix", "0000", "--output", str(out)]) == 2
    assert out.read_text() == "keep me\n"
    assert "already exists; pass --force" in capsys.readouterr().err
    assert (
        main(["ids", "from-bucket", BUCKET, "--prefix", "0000", "--output", str(out), "--force"])
        == 0
    )
    assert set(ids_in(out)) == set(CROWDED)


def test_from_bucket_bare_prints_its_usage(capsys):
    assert main(["ids", "from-bucket"]) == 2
    assert "usage: reingest ids from-bucket" in capsys.readouterr().err
    assert main(["ids"]) == 2
    assert "from-inventory" in capsys.readouterr().err


def test_bucket_listing_splits_deep_prefixes_less(images):
    assert BucketListing(images, BUCKET, KeyRule(), "000").levels == 1
    assert BucketListing(images, BUCKET, KeyRule(), "00000").levels == 0
    listing = BucketListing(images, BUCKET, KeyRule(), "0000", page_size=50)
    assert {k for page in listing.pages() for k in page} == {key(i) for i in CROWDED}
    assert listing.ranges == 16


def test_keys_only_leaves_an_answer_of_another_shape_to_botocore():
    # Given an answer whose objects do not start with their key
    from grid_reingest.adapters.s3_listing import _keys_only

    body = (
        b"<ListBucketResult><Contents><Size>1</Size><Key>a/x</Key></Contents>"
        b"<IsTruncated>false</IsTruncated></ListBucketResult>"
    )
    response = {"status_code": 200, "body": body}
    customized: dict = {}
    # When the handler sees it, Then it changes nothing
    _keys_only(response_dict=response, customized_response_dict=customized)
    assert response["body"] == body
    assert customized == {}
