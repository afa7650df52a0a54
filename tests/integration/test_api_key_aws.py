"""Reading the Grid API key from SSM and Secrets Manager (moto's server) through Powertools."""

from __future__ import annotations

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

from grid_reingest.adapters.api_key import ApiKeyError, load_api_key
from grid_reingest.settings import GridSettings, load

ROOT = {"GRID_DOMAIN_ROOT": "media.example.org"}


def test_api_key_from_an_ssm_secure_string(aws):
    # Given the key in a SecureString parameter
    ssm = boto3.client("ssm", endpoint_url=aws)
    ssm.put_parameter(Name="/TEST/grid-reingest/api-key", Value="ssm-key", Type="SecureString")
    settings = load(GridSettings, {**ROOT, "GRID_API_KEY_PARAMETER": "/TEST/grid-reingest/api-key"})

    # When / Then it is read decrypted
    assert load_api_key(settings, SSMProvider(boto3_client=ssm)) == "ssm-key"


def test_api_key_from_a_secret(aws):
    secrets = boto3.client("secretsmanager", endpoint_url=aws)
    secrets.create_secret(Name="TEST/grid-reingest/api-key", SecretString="secret-key")
    settings = load(GridSettings, {**ROOT, "GRID_API_KEY_SECRET": "TEST/grid-reingest/api-key"})
    assert load_api_key(settings, SecretsProvider(boto3_client=secrets)) == "secret-key"


def test_api_key_missing_parameter_is_named(aws):
    ssm = boto3.client("ssm", endpoint_url=aws)
    settings = load(GridSettings, {**ROOT, "GRID_API_KEY_PARAMETER": "/TEST/nothing-here"})
    with pytest.raises(ApiKeyError, match="'/TEST/nothing-here'"):
        load_api_key(settings, SSMProvider(boto3_client=ssm))
