"""The Grid's settings: URLs inside and outside Lambda, and the body caps."""

from __future__ import annotations

import pytest

from grid_reingest.settings import (
    GRID_MAX_LOADER_BODY_BYTES,
    GRID_MAX_SERVICE_BODY_BYTES,
    SERVICES,
    GridSettings,
    SettingsError,
    load,
)

ROOT = {"GRID_DOMAIN_ROOT": "media.example.org", "GRID_API_KEY_PARAMETER": "/TEST/key"}
IN_LAMBDA = {"AWS_LAMBDA_FUNCTION_NAME": "image-projection-TEST"}


def test_grid_settings_http_url_is_refused_inside_lambda_naming_the_variable():
    # Given a plain-http cropper URL, inside Lambda
    env = {**ROOT, **IN_LAMBDA, "GRID_CROPPER_URL": "http://cropper.internal.example:9000"}

    # When / Then
    with pytest.raises(SettingsError) as error:
        load(GridSettings, env)
    (problem,) = error.value.problems
    assert problem.startswith("GRID_CROPPER_URL='http://cropper.internal.example:9000'")
    assert "must be https" in problem


def test_grid_settings_every_http_url_is_reported_at_once():
    urls = {variable: f"http://{prefix}example.org" for variable, prefix in SERVICES.values()}
    with pytest.raises(SettingsError) as error:
        load(GridSettings, {**ROOT, **IN_LAMBDA, **urls})
    assert len(error.value.problems) == len(SERVICES)


def test_grid_settings_http_url_is_allowed_outside_lambda():
    env = {**ROOT, "GRID_CROPPER_URL": "http://cropper.internal.example:9000"}
    assert load(GridSettings, env).url("cropper") == "http://cropper.internal.example:9000"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_grid_settings_loopback_http_is_allowed_inside_lambda(host):
    # Loopback never leaves the sandbox: a sidecar or a local Grid needs no TLS.
    env = {**ROOT, **IN_LAMBDA, "GRID_LEASES_URL": f"http://{host}:8080/leases"}
    assert load(GridSettings, env).url("leases") == f"http://{host}:8080/leases"


def test_grid_settings_https_and_the_domain_root_pass_inside_lambda():
    env = {**ROOT, **IN_LAMBDA, "GRID_USAGE_URL": "https://usage.example.org"}
    settings = load(GridSettings, env)
    assert settings.url("usage") == "https://usage.example.org"
    assert settings.url("image-loader") == "https://loader.media.media.example.org"


def test_grid_settings_body_caps_default_and_range():
    settings = load(GridSettings, ROOT)
    assert (settings.max_loader_body, settings.max_service_body) == (16 << 20, 4 << 20)
    for var in (GRID_MAX_LOADER_BODY_BYTES, GRID_MAX_SERVICE_BODY_BYTES):
        with pytest.raises(SettingsError, match=f"{var.name}='1000' is invalid"):
            load(GridSettings, {**ROOT, var.name: "1000"})
