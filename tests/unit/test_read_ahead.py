"""Reading iterators ahead of their consumer."""

import threading
import time

import pytest

from grid_reingest.domain.read_ahead import read_ahead


def counted(n: int, produced: list[int]):
    """0..n-1, noting each one as it is produced."""
    for i in range(n):
        produced.append(i)
        yield i


def test_read_ahead_yields_every_item_in_order():
    assert list(read_ahead([iter(range(100))], depth=3)) == list(range(100))


def test_read_ahead_reads_at_most_depth_items_ahead_of_the_reader():
    produced: list[int] = []
    reader = read_ahead([counted(50, produced)], depth=4)
    assert next(reader) == 0
    time.sleep(0.3)
    # one handed over, `depth` waiting, one more produced and blocked on the full buffer
    assert len(produced) <= 1 + 4 + 1
    assert list(reader) == list(range(1, 50))


def test_read_ahead_hands_the_producer_s_error_to_the_reader():
    def items():
        yield 1
        raise RuntimeError("table gone")

    reader = read_ahead([items()], depth=2)
    assert next(reader) == 1
    with pytest.raises(RuntimeError, match="table gone"):
        next(reader)


def test_read_ahead_stops_producing_when_the_reader_stops():
    produced: list[int] = []
    reader = read_ahead([counted(10_000, produced)], depth=2)
    next(reader)
    reader.close()  # returns once the producer has stopped
    stopped_at = len(produced)
    time.sleep(0.3)
    assert len(produced) == stopped_at < 10


def test_read_ahead_interleaves_sources_and_keeps_each_one_s_order():
    sources = [[(s, i) for i in range(30)] for s in range(4)]
    items = list(read_ahead(sources, depth=2))
    assert sorted(items) == sorted(item for source in sources for item in source)
    for s in range(4):
        assert [i for source, i in items if source == s] == list(range(30))


def test_read_ahead_of_no_sources_is_empty():
    assert list(read_ahead([], depth=1)) == []


def test_read_ahead_with_fewer_threads_than_sources_reads_them_all_that_many_at_once():
    # Given 20 sources and 3 threads that note how many sources are being read at once
    lock = threading.Lock()
    reading = [0]
    most = [0]

    def source(s: int):
        with lock:
            reading[0] += 1
            most[0] = max(most[0], reading[0])
        for i in range(5):
            time.sleep(0.001)
            yield (s, i)
        with lock:
            reading[0] -= 1

    # When read
    items = list(read_ahead([source(s) for s in range(20)], depth=4, threads=3))
    # Then every item came, each source in order, never more than 3 sources at once
    assert sorted(items) == [(s, i) for s in range(20) for i in range(5)]
    for s in range(20):
        assert [i for source_, i in items if source_ == s] == list(range(5))
    assert most[0] <= 3


def test_read_ahead_with_threads_stops_taking_sources_after_an_error():
    started: list[int] = []

    def source(s: int):
        started.append(s)
        if s == 0:
            raise RuntimeError("listing refused")
        time.sleep(0.01)
        yield s

    with pytest.raises(RuntimeError, match="listing refused"):
        list(read_ahead([source(s) for s in range(100)], depth=2, threads=2))
    assert len(started) < 100
