"""Sorting more ids than memory holds: runs on disk, merged."""

import random

from grid_reingest_cli.external_sort import difference, ids_per_chunk, sort_unique


def ids(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(160):040x}" for _ in range(n)]


def test_external_sort_gives_every_id_once_in_order_through_runs(tmp_path):
    # Given ids with repeats, more than one chunk holds
    items = ids(1000, 1)
    items += items[:300]
    random.Random(2).shuffle(items)
    # When sorted with chunks of 64 ids
    result = sort_unique(items, str(tmp_path), max_ids=64)
    # Then they come sorted and once each, from ceil(1300 / 64) runs of at most 64 ids
    assert len(result.runs) == 21
    for run in result.runs:
        assert len((tmp_path / run).read_text().splitlines()) <= 64
    assert list(result) == sorted(set(items))
    assert result.unique == 1000


def test_external_sort_merges_runs_of_runs_beyond_the_fan_in(tmp_path):
    items = ids(500, 3)
    result = sort_unique(items, str(tmp_path), max_ids=7, fan_in=3)
    assert len(result.runs) <= 3
    assert list(result) == sorted(items)
    # the runs merged away are removed as they are merged
    assert len(list(tmp_path.iterdir())) == len(result.runs)


def test_external_sort_of_nothing_is_empty(tmp_path):
    assert list(sort_unique([], str(tmp_path), max_ids=10)) == []


def test_external_sort_difference_of_sorted_streams():
    a = ["a", "c", "d", "f", "g"]
    b = ["b", "c", "e", "f", "h"]
    assert list(difference(a, b)) == ["a", "d", "g"]
    assert list(difference(a, [])) == a
    assert list(difference([], b)) == []


def test_external_sort_chunk_size_follows_the_memory_limit():
    assert ids_per_chunk(2**20) == 2**20 // 110
    assert ids_per_chunk(1) == 1
