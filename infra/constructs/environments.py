"""Each function's environment variables, from the stage's config, checked at synth time.

Every function's environment is built from the variables its settings class
reads (`grid_reingest.settings`), and is loaded with that class at synth time:
a value a worker would refuse at cold start fails `cdk synth` instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from grid_reingest import names, settings
from infra import constants as c
from infra.config import SETTINGS_CLASSES, ConfigError, StageConfig


def function_environments(config: StageConfig) -> dict[str, dict[str, str]]:
    """Each function's environment variables, by service name."""
    stage = config.stage
    known: dict[str, str] = {
        settings.STAGE.name: stage,
        settings.STATE_TABLE_NAME.name: c.resource_name(None, stage),
        settings.THRALL_STREAM_NAME.name: config.thrall_stream_arn,
        settings.MAX_ITERATOR_AGE_MS.name: str(config.max_iterator_age_ms),
        settings.GRID_CONCURRENCY.name: str(config.grid_concurrency),
        settings.GRID_API_KEY_PARAMETER.name: config.api_key_parameter,
        settings.PROJECTION_FUNCTION_NAME.name: c.resource_name(names.IMAGE_PROJECTION, stage),
        **config.grid_service_urls,
        **config.worker_settings,
    }
    if config.grid_domain_root:
        known[settings.GRID_DOMAIN_ROOT.name] = config.grid_domain_root
    if config.backpressure_streams:
        known[settings.BACKPRESSURE_STREAMS.name] = ",".join(config.backpressure_streams)
    if config.thrall_checkpoint_table:
        known[settings.THRALL_CHECKPOINT_TABLE.name] = config.thrall_checkpoint_table
    if config.repair is not None:
        # The worker that ends a pass publishes its report on the stage's report topic.
        known[settings.REPORT_TOPIC_ARN.name] = config.repair.report_topic_arn
    per_function = {
        names.IMAGE_PROJECTION: {},
        names.BATCH_INDEX: {
            settings.SCHEDULE_RULE_NAME.name: c.resource_name(names.BATCH_INDEX, stage),
            settings.MAX_IN_FLIGHT.name: str(config.pass_in_flight),
            # What the stop margin is checked against: the function's own timeout.
            settings.PROJECTION_TIMEOUT_SECONDS.name: str(config.projection_timeout_seconds),
        },
        names.BATCH_CHECK: {
            settings.SCHEDULE_RULE_NAME.name: c.resource_name(names.BATCH_CHECK, stage),
            settings.CHECK_MAX_IN_FLIGHT.name: str(config.batch_check.max_in_flight),
            # A check-first item media-api lacks goes back to batch-index: its rule goes on.
            settings.WAKE_INDEX_RULE_NAME.name: c.resource_name(names.BATCH_INDEX, stage),
        },
        names.STATE_COUNTS: {},
    }
    # batch-index invokes image-projection, so it never talks to the Grid itself.
    grid_only = {v.name for v in settings.variables(settings.GridSettings)} - {
        settings.GRID_CONCURRENCY.name
    }
    environments = {}
    for service, cls in SETTINGS_CLASSES.items():
        values = {**known, **per_function[service]}
        environment: dict[str, str] = {}
        for var in settings.variables(cls):
            if service == names.BATCH_INDEX and var.name in grid_only:
                continue
            # Defaults are written out too: the console then shows every knob
            # an operator may turn, with its current value.
            value = values.get(var.name, var.default)
            if value is not None:
                environment[var.name] = value
        environments[service] = environment
    return environments


def check_environments(config: StageConfig, environments: Mapping[str, Mapping[str, str]]) -> None:
    """Load each function's settings from its environment as Lambda will, or raise ConfigError."""
    problems: list[str] = []
    for service, environment in environments.items():
        inside_lambda = {
            **environment,
            "AWS_LAMBDA_FUNCTION_NAME": c.resource_name(service, config.stage),
        }
        try:
            settings.load(SETTINGS_CLASSES[service], inside_lambda)
        except settings.SettingsError as error:
            problems.extend(f"{service} would refuse its settings: {p}" for p in error.problems)
    if problems:
        raise ConfigError(config.stage, problems)
