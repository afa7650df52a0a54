"""The workers' settings taken together: a stop margin that leaves time to publish and record."""

import pytest

from grid_reingest.settings import BatchCheckSettings, BatchIndexSettings, SettingsError, load

INDEX = {"STATE_TABLE_NAME": "t", "THRALL_STREAM_NAME": "s", "PROJECTION_FUNCTION_NAME": "f"}
GRID = {"GRID_DOMAIN_ROOT": "media.example.org", "GRID_API_KEY_PARAMETER": "/TEST/key"}


def test_settings_refuse_a_margin_without_time_to_publish_and_record():
    # Given a margin that only covers the projection itself
    env = {**INDEX, "STOP_MARGIN_SECONDS": "300", "PROJECTION_TIMEOUT_SECONDS": "300"}
    with pytest.raises(SettingsError) as caught:
        load(BatchIndexSettings, env)
    assert (
        "STOP_MARGIN_SECONDS=300 must exceed PROJECTION_TIMEOUT_SECONDS (300 s) plus "
        "RECORD_BUDGET_SECONDS (120 s), 420 s" in str(caught.value)
    )


def test_settings_default_margin_leaves_time_to_publish_and_record():
    settings = load(BatchIndexSettings, INDEX)
    assert (
        settings.stop_margin_seconds
        > settings.projection_timeout_seconds + settings.loop.record_budget_seconds
    )


def test_settings_batch_check_margin_covers_a_lookup_and_recording():
    env = {"STATE_TABLE_NAME": "t", **GRID, "CHECK_STOP_MARGIN_SECONDS": "15"}
    with pytest.raises(SettingsError, match="CHECK_STOP_MARGIN_SECONDS=15 must exceed"):
        load(BatchCheckSettings, env)
    settings = load(BatchCheckSettings, {"STATE_TABLE_NAME": "t", **GRID})
    assert (
        settings.max_in_flight,
        settings.loop.breaker_share,
        settings.loop.breaker_min_results,
    ) == (
        8,
        0.5,
        20,
    )


def test_settings_grid_concurrency_is_read_once():
    # batch-index's in-flight ceiling is its own variable; GRID_CONCURRENCY sizes the Grid client
    settings = load(BatchIndexSettings, {**INDEX, "MAX_IN_FLIGHT": "64", "GRID_CONCURRENCY": "4"})
    assert settings.max_in_flight == 64
    assert not hasattr(settings, "concurrency")
