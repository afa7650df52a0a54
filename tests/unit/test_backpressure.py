"""How much work to take for an iterator age."""

from grid_reingest.domain.backpressure import decide


def test_no_data_takes_nothing_and_names_the_silent_stream():
    verdict = decide(None, ["thrall-TEST"], 60_000, 500)
    assert verdict.batch == 0
    assert "no iterator-age data for thrall-TEST" in verdict.reason


def test_above_the_threshold_takes_nothing():
    assert decide(60_001, [], 60_000, 500).batch == 0


def test_an_easy_stream_gets_a_full_batch():
    assert decide(0, [], 60_000, 500).batch == 500
    assert decide(30_000, [], 60_000, 500).batch == 500


def test_the_batch_shrinks_as_the_age_nears_the_threshold():
    sizes = [decide(age, [], 60_000, 500).batch for age in (36_000, 45_000, 54_000, 60_000)]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] < 500
    assert sizes[-1] == 50  # never below a tenth while under the threshold


def test_a_tiny_batch_still_takes_one():
    assert decide(59_000, [], 60_000, 3).batch == 1
