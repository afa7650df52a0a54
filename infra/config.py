"""Each stage's configuration, read from CDK context (cdk.json) and validated.

The stage's keys are the pydantic model of `infra/stage_config.py`. Every
problem is reported at once, each naming its context key, e.g.
`stages.PROD.batchIndex.reservedConcurrency`, so the stack cannot deploy a
value a worker would refuse at cold start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as _ValidationError
from pydantic.fields import FieldInfo

from grid_reingest import names, settings
from infra import constants as c
from infra.stage_config import RepairConfig, StageConfig, WorkerConfig

__all__ = [
    "SETTINGS_CLASSES",
    "ConfigError",
    "RepairConfig",
    "StageConfig",
    "WorkerConfig",
    "load_stage_config",
]


class ConfigError(ValueError):
    """The context does not configure a stage; the message lists every problem."""

    def __init__(self, stage: str, problems: list[str]) -> None:
        super().__init__(
            f"invalid CDK context for stage {stage} (cdk.json, context key "
            f"{c.STAGES_CONTEXT_KEY!r}):\n  - " + "\n  - ".join(problems)
        )
        self.stage = stage
        self.problems = problems


# Variables the stack wires itself; the `settings` map may not set them.
_WIRED = frozenset(
    v.name
    for v in (
        settings.STAGE,
        settings.STATE_TABLE_NAME,
        settings.SCHEDULE_RULE_NAME,
        settings.PROJECTION_FUNCTION_NAME,
        settings.THRALL_STREAM_NAME,
        settings.BACKPRESSURE_STREAMS,
        settings.THRALL_CHECKPOINT_TABLE,
        settings.MAX_ITERATOR_AGE_MS,
        settings.GRID_CONCURRENCY,
        settings.GRID_DOMAIN_ROOT,
        settings.GRID_API_KEY_PARAMETER,
        settings.GRID_API_KEY_SECRET,
        settings.GRID_API_KEY,
        settings.MAX_IN_FLIGHT,
        settings.CHECK_MAX_IN_FLIGHT,
        settings.PROJECTION_TIMEOUT_SECONDS,
        *settings.SERVICE_URLS.values(),
    )
)

# What each function's settings are loaded with at run time.
SETTINGS_CLASSES: Mapping[str, type] = {
    names.IMAGE_PROJECTION: settings.ProjectionSettings,
    names.BATCH_INDEX: settings.BatchIndexSettings,
    names.BATCH_CHECK: settings.BatchCheckSettings,
    names.STATE_COUNTS: settings.StateCountsSettings,
}
# Every variable some worker reads, by name.
_ALL_VARS = {v.name: v for cls in SETTINGS_CLASSES.values() for v in settings.variables(cls)}


def load_stage_config(context: Mapping[str, Any], stage: str) -> StageConfig:
    """The configuration of `stage` from the app's context, or a ConfigError naming each bad key."""
    stages = context.get(c.STAGES_CONTEXT_KEY)
    raw = stages.get(stage) if isinstance(stages, Mapping) else None
    if not isinstance(raw, Mapping):
        raise ConfigError(
            stage,
            [
                f"{c.STAGES_CONTEXT_KEY}.{stage} is missing: each of {', '.join(c.STAGES)} "
                "needs its settings (see docs/infra.md)"
            ],
        )
    key = _Key(stage)
    raw, problems = _retired(key, raw)
    try:
        config = StageConfig.model_validate({**raw, "stage": stage})
    except _ValidationError as error:
        problems.extend(settings.problems_of(error.errors(), key.field_at))
        raise ConfigError(stage, problems) from None
    problems.extend(_checks(key, config, raw.get("settings") or {}))
    if not problems:
        problems.extend(_cross_checks(key, config))
    if problems:
        raise ConfigError(stage, problems)
    return config


class _Key:
    """Names a place in one stage's context, with the field that reads it."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def __call__(self, *path: Any) -> str:
        return ".".join(map(str, (c.STAGES_CONTEXT_KEY, self.stage, *path)))

    def field_at(self, loc: tuple[Any, ...]) -> tuple[str, FieldInfo | None]:
        model: Any = StageConfig
        found: FieldInfo | None = None
        for i, part in enumerate(loc):
            fields = {k: f for n, f in model.model_fields.items() for k in (n, f.alias)}
            if part not in fields:
                return self(*loc[:i]), None
            found = fields[part]
            loc = (*loc[:i], found.alias or part, *loc[i + 1 :])
            nested = [
                t
                for t in (found.annotation, *getattr(found.annotation, "__args__", ()))
                if isinstance(t, type) and issubclass(t, BaseModel)
            ]
            if not nested:
                return self(*[p for p in loc if p != "[key]"]), found
            model = nested[0]
        return self(*loc), found


def _retired(key: _Key, raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`raw` less the keys no longer read, each refused with what replaced it."""
    raw = dict(raw)
    index = raw.get("batchIndex")
    if not (isinstance(index, Mapping) and "maxInFlight" in index):
        return raw, []
    raw["batchIndex"] = {k: v for k, v in index.items() if k != "maxInFlight"}
    return raw, [
        f"{key('batchIndex', 'maxInFlight')} is no longer read: the pass's ceiling on "
        "projections in flight (all batch-index invocations together) is the lower of "
        f"{key('gridConcurrency')} and {key('imageProjection', 'reservedConcurrency')}; "
        "remove it and set those (`reingest tune --max-in-flight` lowers it while a pass runs)"
    ]


def _checks(key: _Key, config: StageConfig, raw_settings: Mapping[str, Any]) -> list[str]:
    """What the schema cannot say about one key at a time."""
    problems: list[str] = []
    arns = {
        ("thrallStreamArn",): config.thrall_stream_arn,
        ("thrallStreamKeyArn",): config.thrall_stream_key_arn,
        ("apiKeyKmsKeyArn",): config.api_key_kms_key_arn,
        ("alarmTopicArn",): config.alarm_topic_arn,
        ("repair", "reportTopicArn"): config.repair and config.repair.report_topic_arn,
    }
    problems.extend(
        f"{key(*path)}={arn!r} is in another region than the stage's ({config.region})"
        for path, arn in arns.items()
        if arn and arn.split(":")[3] != config.region
    )
    for service, url in config.service_urls.items():
        if service not in settings.SERVICES:
            problems.append(
                f"{key('gridServiceUrls', service)}: unknown service; known: "
                f"{', '.join(settings.SERVICES)}"
            )
            continue
        var = settings.SERVICE_URLS[service]
        try:
            var.parse(url)
        except ValueError as error:
            problems.append(
                f"{key('gridServiceUrls', service)}={url!r} is invalid ({error}): "
                f"{var.help}; allowed: {var.allowed}"
            )
    if not config.grid_domain_root and len(config.service_urls) < len(settings.SERVICES):
        problems.append(
            f"{key('gridDomainRoot')} is required: the Grid's domain root "
            "(required unless gridServiceUrls names every service)"
        )
    if config.alarm_topic_arn and config.alarm_email:
        problems.append(
            f"{key('alarmTopicArn')} and {key('alarmEmail')} are both set: "
            "set one (an existing topic, or an email for a topic of the stack's own)"
        )
    elif not (config.alarm_topic_arn or config.alarm_email) and key.stage in c.ALERTED_STAGES:
        problems.append(
            f"{key('alarmTopicArn')} or {key('alarmEmail')} is required for "
            f"stage {key.stage}: its alarms must notify somebody (an existing SNS topic's "
            "ARN, or an email address for a topic of the stack's own)"
        )
    repair = config.repair
    if repair is not None and bool(repair.source_bucket) == bool(repair.inventory_url):
        problems.append(
            f"{key('repair')}: set exactly one of sourceBucket (the Grid's image bucket, "
            "listed) and inventory (s3://BUCKET/PREFIX/ of its S3 Inventory reports)"
        )
    for name, value in config.worker_settings.items():
        if name in _WIRED:
            problems.append(
                f"{key('settings', name)}: {name} is set by the stack itself "
                "(see docs/infra.md for the key that sets it)"
            )
        elif name not in _ALL_VARS:
            problems.append(
                f"{key('settings', name)}: no worker reads {name}; known: "
                f"{', '.join(sorted(set(_ALL_VARS) - _WIRED))}"
            )
        else:
            var = _ALL_VARS[name]
            try:
                var.parse(value)
            except ValueError as error:
                problems.append(
                    f"{key('settings', name)}={raw_settings[name]!r} is invalid ({error}): "
                    f"{var.help}; "
                    f"allowed: {var.allowed}"
                )
    return problems


def _cross_checks(key: _Key, config: StageConfig) -> list[str]:
    """What is wrong with the values taken together."""
    problems = []
    lease = config.setting(settings.CLAIM_LEASE_SECONDS)
    if lease <= c.WORKER_TIMEOUT_SECONDS:
        problems.append(
            f"{key('settings', settings.CLAIM_LEASE_SECONDS.name)}={lease} must exceed the "
            f"workers' timeout ({c.WORKER_TIMEOUT_SECONDS} s): a live worker's claims would be "
            "taken"
        )
    projection = config.projection_timeout_seconds
    if projection > c.LAMBDA_MAX_TIMEOUT_SECONDS:
        problems.append(
            f"{key('settings')}: {settings.GRID_LOADER_TIMEOUT_SECONDS.name} + "
            f"{settings.GRID_SERVICE_TIMEOUT_SECONDS.name} + "
            f"{c.PROJECTION_TIMEOUT_MARGIN_SECONDS} s = {projection} s exceeds Lambda's "
            f"{c.LAMBDA_MAX_TIMEOUT_SECONDS} s"
        )
    margin = config.setting(settings.STOP_MARGIN_SECONDS)
    too_short = settings.stop_margin_problems(
        settings.STOP_MARGIN_SECONDS.name,
        margin,
        "image-projection's timeout",
        projection,
        config.setting(settings.RECORD_BUDGET_SECONDS),
    )
    problems.extend(f"{key('settings')}.{problem}" for problem in too_short)
    if margin >= c.WORKER_TIMEOUT_SECONDS:
        problems.append(
            f"{key('settings', settings.STOP_MARGIN_SECONDS.name)}={margin} must stay below the "
            f"worker timeout ({c.WORKER_TIMEOUT_SECONDS} s)"
        )
    return problems
