"""Worker settings: every problem reported at once, with names and allowed values."""

import pytest

from grid_reingest.domain.states import ProgressState
from grid_reingest.settings import (
    BatchCheckSettings,
    BatchIndexSettings,
    ProjectionSettings,
    SettingsError,
    describe,
    load,
    stream_name,
)

INDEX = {"STATE_TABLE_NAME": "t", "THRALL_STREAM_NAME": "s", "PROJECTION_FUNCTION_NAME": "f"}
GRID = {"GRID_DOMAIN_ROOT": "media.example.org", "GRID_API_KEY_PARAMETER": "/TEST/key"}


def test_defaults_fill_what_is_not_set():
    settings = load(BatchIndexSettings, INDEX)
    assert settings.max_in_flight == 32
    assert settings.start_state is ProgressState.NOT_STARTED
    assert settings.watched_streams == ("s",)
    assert settings.grid is None  # image-projection does the Grid's part


def test_every_problem_is_reported_in_one_error():
    with pytest.raises(SettingsError) as caught:
        load(
            BatchIndexSettings, {"MAX_IN_FLIGHT": "0", "DRY_RUN": "maybe", "INDEX_START_STATE": "5"}
        )
    text = str(caught.value)
    for expected in (
        "STATE_TABLE_NAME is required",
        "THRALL_STREAM_NAME is required",
        "MAX_IN_FLIGHT='0' is invalid",
        "allowed: 1..1024",
        "DRY_RUN='maybe'",
        "INDEX_START_STATE='5'",
        "GRID_DOMAIN_ROOT is required",
    ):
        assert expected in text
    assert len(caught.value.problems) == 7


def test_projecting_in_process_needs_the_grid():
    env = {k: v for k, v in INDEX.items() if k != "PROJECTION_FUNCTION_NAME"}
    settings = load(BatchIndexSettings, {**env, **GRID})
    assert settings.grid.url("image-loader") == "https://loader.media.media.example.org"


def test_service_urls_derive_from_the_domain_root_and_override_one_by_one():
    grid = load(ProjectionSettings, {**GRID, "GRID_CROPPER_URL": "http://127.0.0.1:9/"}).grid
    assert grid.url("media-api") == "https://api.media.media.example.org"
    assert grid.url("leases") == "https://media-leases.media.example.org"
    assert grid.url("cropper") == "http://127.0.0.1:9"


def test_exactly_one_api_key_source():
    with pytest.raises(SettingsError, match=r"set exactly one of .* \(set: none\)"):
        load(ProjectionSettings, {"GRID_DOMAIN_ROOT": "x"})
    with pytest.raises(SettingsError, match="set: GRID_API_KEY_PARAMETER, GRID_API_KEY"):
        load(ProjectionSettings, {**GRID, "GRID_API_KEY": "k"})


def test_a_plain_api_key_is_refused_inside_lambda():
    env = {"GRID_DOMAIN_ROOT": "x", "GRID_API_KEY": "k", "AWS_LAMBDA_FUNCTION_NAME": "f"}
    with pytest.raises(SettingsError, match="for local runs only"):
        load(ProjectionSettings, env)


def test_bad_urls_are_named():
    with pytest.raises(SettingsError, match=r"GRID_LEASES_URL='leases\.local' is invalid"):
        load(
            BatchCheckSettings, {**GRID, "STATE_TABLE_NAME": "t", "GRID_LEASES_URL": "leases.local"}
        )


def test_describe_documents_every_variable():
    text = describe(BatchCheckSettings)
    assert "CHECK_MIN_AGE_SECONDS\n    media-api's 404 is final" in text
    assert "CHECK_FIRST_LOOK_SECONDS\n    " in text
    assert "default: 3" in text
    assert "GRID_API_KEY_SECRET" in text


def test_stream_name_from_an_arn():
    assert stream_name("arn:aws:kinesis:eu-west-1:123:stream/media-low-TEST") == "media-low-TEST"
    assert stream_name("plain") == "plain"
