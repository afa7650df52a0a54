"""Where the Grid API key comes from, and remembering the Grid's verdict on callers' keys."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.parameters import GetParameterError

from grid_reingest.adapters.api_key import ApiKeyError, KeyValidator, key_digest, load_api_key
from grid_reingest.adapters.grid import GridResponse, KeyCheck
from grid_reingest.settings import GridSettings, load

ROOT = {"GRID_DOMAIN_ROOT": "media.example.org"}


class StubProvider:
    """Stands in for a Powertools provider: records how it was asked."""

    def __init__(self, value=None, error: Exception | None = None) -> None:
        self.value, self.error = value, error
        self.calls: list[tuple[str, dict]] = []

    def get(self, name: str, **kwargs):
        self.calls.append((name, kwargs))
        if self.error:
            raise self.error
        return self.value


def test_load_api_key_plain_for_local_runs():
    settings = load(GridSettings, {**ROOT, "GRID_API_KEY": "local-key"})
    assert load_api_key(settings) == "local-key"


def test_load_api_key_from_ssm_decrypted_and_cached():
    settings = load(GridSettings, {**ROOT, "GRID_API_KEY_PARAMETER": "/TEST/grid/api-key"})
    provider = StubProvider(" ssm-key\n")
    assert load_api_key(settings, provider) == "ssm-key"
    assert provider.calls == [("/TEST/grid/api-key", {"max_age": 300, "decrypt": True})]


def test_load_api_key_from_a_secret():
    settings = load(GridSettings, {**ROOT, "GRID_API_KEY_SECRET": "grid/api-key"})
    provider = StubProvider("secret-key")
    assert load_api_key(settings, provider) == "secret-key"
    assert provider.calls == [("grid/api-key", {"max_age": 300})]


def test_load_api_key_failure_names_the_parameter():
    settings = load(GridSettings, {**ROOT, "GRID_API_KEY_PARAMETER": "/TEST/grid/api-key"})
    provider = StubProvider(error=GetParameterError("ParameterNotFound"))
    with pytest.raises(ApiKeyError, match="SSM parameter '/TEST/grid/api-key'"):
        load_api_key(settings, provider)


def test_load_api_key_empty_value_is_an_error():
    settings = load(GridSettings, {**ROOT, "GRID_API_KEY_SECRET": "grid/api-key"})
    with pytest.raises(ApiKeyError, match="is empty"):
        load_api_key(settings, StubProvider("  "))


# -- KeyValidator ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verdict(valid):
    return KeyCheck(valid, GridResponse("leases", {True: 200, False: 401, None: 503}[valid]))


def test_key_validator_remembers_a_verdict_until_it_expires():
    # Given a Grid that accepts the key
    asked: list[str] = []
    clock = Clock()
    validator = KeyValidator(lambda key: asked.append(key) or verdict(True), ttl=300, clock=clock)

    # When asked twice within the TTL, then after it
    first = validator.validate("k1")
    validator.validate("k1")
    clock.now += 301
    validator.validate("k1")

    # Then the Grid was asked once per TTL
    assert first.valid is True
    assert asked == ["k1", "k1"]


def test_key_validator_remembers_refusals_per_key():
    verdicts = {"good": verdict(True), "bad": verdict(False)}
    asked: list[str] = []
    validator = KeyValidator(lambda key: asked.append(key) or verdicts[key], clock=Clock())
    assert [validator.validate(k).valid for k in ("good", "bad", "good", "bad")] == [
        True,
        False,
        True,
        False,
    ]
    assert asked == ["good", "bad"]


def test_key_validator_does_not_remember_an_unknown_verdict():
    asked: list[str] = []
    validator = KeyValidator(lambda key: asked.append(key) or verdict(None), clock=Clock())
    validator.validate("k")
    validator.validate("k")
    assert len(asked) == 2


def test_key_validator_keeps_digests_not_keys():
    validator = KeyValidator(lambda key: verdict(True), clock=Clock())
    validator.validate("the-secret-key")
    assert list(validator._verdicts) == [key_digest("the-secret-key")]
    assert "the-secret-key" not in repr(validator._verdicts)
