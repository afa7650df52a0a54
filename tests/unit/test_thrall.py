"""Encoding thrall's messages and splitting PutRecords calls."""

import gzip
import json
from datetime import UTC, datetime

from grid_reingest.domain.isotime import format_instant
from grid_reingest.domain.thrall_message import (
    compact_json,
    encode_image_json,
    encode_message,
    record_size,
    split_calls,
)

NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_encode_message_is_marker_then_gzipped_json():
    image = {"id": "abc", "metadata": {"title": "Caf\u00e9"}}
    data = encode_message(image, datetime(2024, 5, 1, 10, 0, tzinfo=UTC))
    assert data[:1] == b"\x00"
    message = json.loads(gzip.decompress(data[1:]))
    assert message == {
        "subject": "reingest-image",
        "image": image,
        "lastModified": "2024-05-01T10:00:00.000Z",
    }


def test_record_size_counts_the_partition_key():
    assert record_size("abc", b"12345") == 8


def test_calls_respect_the_count_limit():
    records = [(f"{i:040x}", b"x") for i in range(1201)]
    assert [len(c) for c in split_calls(records)] == [500, 500, 201]


def test_calls_respect_the_size_limit():
    big = b"x" * (900 * 1024)
    records = [(f"{i:040x}", big) for i in range(12)]
    sizes = [sum(record_size(i, d) for i, d in call) for call in split_calls(records)]
    assert all(size <= 5 * 1024 * 1024 for size in sizes)
    assert sum(len(c) for c in split_calls(records)) == 12
    assert len(sizes) == 3


def test_an_image_serialized_once_encodes_as_the_whole_message_would():
    image = {"id": "abc", "title": "Café — 東京", "n": [1, 2.5, None, True], "q": '"\\'}
    message = {"subject": "reingest-image", "image": image, "lastModified": format_instant(NOW)}
    whole = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    data = encode_image_json(compact_json(image), NOW)
    assert data[:1] == b"\x00"
    assert gzip.decompress(data[1:]) == whole
    assert data == encode_message(image, NOW)
