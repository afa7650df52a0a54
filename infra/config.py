"""Each stage's configuration, read from CDK context (cdk.json) and validated.

A stage is a pydantic model of cdk.json's keys. Every problem is reported at
once, each naming its context key, e.g. `stages.PROD.batchIndex.reservedConcurrency`.
Keys that are worker variables take their type and range from that variable's
one declaration in `grid_reingest.settings`, so the stack cannot deploy a value
a worker would refuse at cold start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic import ValidationError as _ValidationError
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from grid_reingest import names, settings
from infra import constants as c


class ConfigError(ValueError):
    """The context does not configure a stage; the message lists every problem."""

    def __init__(self, stage: str, problems: list[str]) -> None:
        super().__init__(
            f"invalid CDK context for stage {stage} (cdk.json, context key "
            f"{c.STAGES_CONTEXT_KEY!r}):\n  - " + "\n  - ".join(problems)
        )
        self.stage = stage
        self.problems = problems


_ARN = r"^arn:aws[a-z-]*:{}:(?P<region>[a-z0-9-]+):(?P<account>\d{{12}}):{}$"
_STREAM_ARN = _ARN.format("kinesis", r"stream/[A-Za-z0-9_.-]{1,128}")
_KEY_ARN = _ARN.format("kms", "key/[A-Za-z0-9-]+")
_TOPIC_ARN = _ARN.format("sns", "[A-Za-z0-9_-]{1,256}")
# EventBridge's schedule expressions (its own syntax is checked when deployed).
_SCHEDULE = r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$"


def _text(pattern: str, meaning: str) -> Any:
    return Field(pattern=pattern, description=meaning)


def _worker_var(var: settings.Var, meaning: str | None = None) -> Any:
    """A key whose value is a worker variable's: its checks, read strictly as JSON."""
    return FieldInfo.merge_field_infos(var.checks, Field(description=meaning or var.help))


def _one_of(allowed: tuple[int, ...]) -> Any:
    def check(value: int) -> int:
        if value not in allowed:
            raise ValueError(f"not one of {allowed}")
        return value

    return AfterValidator(check)


def _as_text(values: Any) -> Any:
    """The `settings` map's values as the environment will hold them (true, not True)."""
    if not isinstance(values, Mapping):
        return values
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}


class _Keys(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", strict=True, frozen=True, validate_by_name=True
    )


class WorkerConfig(_Keys):
    """One scheduled worker: how often it is kept alive, how many invocations and images at once."""

    schedule_minutes: Annotated[
        int,
        Field(
            alias="scheduleRateMinutes",
            ge=c.SCHEDULE_MINUTES_RANGE[0],
            le=c.SCHEDULE_MINUTES_RANGE[1],
            description="minutes between two runs of the worker",
        ),
    ]
    reserved_concurrency: Annotated[
        int,
        Field(
            ge=c.RESERVED_CONCURRENCY_RANGE[0],
            le=c.RESERVED_CONCURRENCY_RANGE[1],
            description="most invocations of the worker at once",
        ),
    ]
    # images at once, at most (batch-index: from pass_in_flight)
    max_in_flight: Annotated[int | None, _worker_var(settings.CHECK_MAX_IN_FLIGHT)] = None


class ProjectionConfig(_Keys):
    """image-projection's own keys."""

    reserved_concurrency: Annotated[
        int,
        Field(
            ge=c.PROJECTION_RESERVED_CONCURRENCY_RANGE[0],
            le=c.PROJECTION_RESERVED_CONCURRENCY_RANGE[1],
            description="most image-projection invocations at once; with gridConcurrency, "
            "the pass's ceiling on projections in flight",
        ),
    ]


class RepairConfig(_Keys):
    """The stage's scheduled repair (cdk.json `repair`): when, from where, told to whom."""

    schedule: Annotated[
        str,
        _text(
            _SCHEDULE,
            "when the repair starts a pass: an EventBridge expression, e.g. "
            "cron(0 3 ? * SUN *) or rate(7 days)",
        ),
    ]
    source_bucket: Annotated[str | None, _worker_var(settings.REPAIR_SOURCE_BUCKET)] = None
    inventory_url: Annotated[
        str | None, _worker_var(settings.REPAIR_INVENTORY_URL), Field(alias="inventory")
    ] = None
    instance: Annotated[str | None, _worker_var(settings.REPAIR_INSTANCE)] = None
    report_topic_arn: Annotated[
        str,
        _text(
            _TOPIC_ARN,
            "the SNS topic each scheduled pass's report is published on "
            "(arn:aws:sns:<region>:<account>:<name>)",
        ),
    ]


# A map of keys, each required: missing, it is read as {} so that each missing key is named.
_REQUIRED_KEYS = Field(default_factory=dict, validate_default=True)


class StageConfig(_Keys):
    """Everything one stage's stack is built from: one stage of cdk.json."""

    stage: str = ""
    region: Annotated[
        str, _text(r"^[a-z]{2}(-[a-z]+)+-\d$", "the stage's AWS region, e.g. eu-west-1")
    ]
    thrall_stream_arn: Annotated[
        str,
        _text(
            _STREAM_ARN,
            "ARN of thrall's low-priority Kinesis stream "
            "(arn:aws:kinesis:<region>:<account>:stream/<name>)",
        ),
    ]
    thrall_stream_key_arn: Annotated[
        str,
        _text(
            _KEY_ARN,
            "ARN of the KMS key that encrypts thrall's stream "
            "(arn:aws:kms:<region>:<account>:key/<id>; not an alias)",
        ),
    ]
    api_key_parameter: Annotated[
        str,
        _text(
            r"^(/[A-Za-z0-9_.-]+)+$",
            "name of the SecureString SSM parameter holding the Grid API key, "
            "e.g. /TEST/media-service/grid-reingest/api-key",
        ),
    ]
    api_key_kms_key_arn: Annotated[
        str | None,
        _text(
            _KEY_ARN,
            "ARN of the customer-managed KMS key of the API-key parameter "
            "(leave out for the default aws/ssm key)",
        ),
    ] = None
    grid_domain_root: Annotated[
        str | None,
        _text(
            r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$",
            "the Grid's domain root; each service is https://<prefix><root> "
            "(required unless gridServiceUrls names every service)",
        ),
    ] = None
    # Service name -> its URL (grid_service_urls: by variable, as the functions read them).
    service_urls: Annotated[
        dict[str, str],
        Field(alias="gridServiceUrls", description="a map of Grid service names to base URLs"),
    ] = {}
    grid_concurrency: Annotated[int, _worker_var(settings.GRID_CONCURRENCY)]
    max_iterator_age_ms: Annotated[int, _worker_var(settings.MAX_ITERATOR_AGE_MS)]
    backpressure_streams: Annotated[
        tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")], ...],
        Field(
            alias="backpressureStreamNames",
            strict=False,  # JSON's list, read as a tuple
            description="a list of Kinesis stream names whose iterator age gates batch-index",
        ),
    ] = ()  # empty: thrall's stream
    batch_index: Annotated[WorkerConfig, _REQUIRED_KEYS]
    batch_check: Annotated[WorkerConfig, _REQUIRED_KEYS]
    image_projection: Annotated[ProjectionConfig, _REQUIRED_KEYS]
    log_retention_days: Annotated[
        int,
        _one_of(c.LOG_RETENTION_DAYS),
        Field(
            description="days the functions' logs are kept",
            json_schema_extra={"allowed": f"one of {c.LOG_RETENTION_DAYS}"},
        ),
    ]
    unknown_failure_alarm_share: Annotated[
        float,
        Field(
            gt=0,
            le=1,
            description="share of claimed images failing for unknown reasons that raises an alarm",
        ),
    ]
    # An existing topic the alarms notify; else a topic of the stack's own, with alarm_email.
    alarm_topic_arn: Annotated[
        str | None,
        _text(
            _TOPIC_ARN,
            "an existing SNS topic the alarms notify (arn:aws:sns:<region>:<account>:<name>)",
        ),
    ] = None
    alarm_email: Annotated[
        str | None,
        _text(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "an email address the stack's alarm topic notifies"),
    ] = None
    projection_function_url: Annotated[
        bool, Field(description="give image-projection a public Function URL")
    ] = False
    # Extra worker variables, by name.
    worker_settings: Annotated[
        dict[str, str],
        BeforeValidator(_as_text),
        Field(alias="settings", description="a map of worker variable names to values"),
    ] = {}
    # thrall's KCL lease table; None: not read.
    thrall_checkpoint_table: Annotated[
        str | None, _worker_var(settings.THRALL_CHECKPOINT_TABLE)
    ] = None
    repair: RepairConfig | None = None  # the scheduled repair; None: none (the default)

    @property
    def grid_service_urls(self) -> dict[str, str]:
        """The services' own URLs by the variable the functions read each from."""
        return {
            settings.SERVICES[s][0]: settings.SERVICE_URLS[s].parse(url)
            for s, url in self.service_urls.items()
        }

    @property
    def projection_reserved_concurrency(self) -> int:
        """Most image-projection invocations at once."""
        return self.image_projection.reserved_concurrency

    @property
    def thrall_stream_name(self) -> str:
        """The stream's name, as CloudWatch's StreamName dimension wants it."""
        return settings.stream_name(self.thrall_stream_arn)

    @property
    def watched_streams(self) -> tuple[str, ...]:
        """The streams whose iterator age gates batch-index."""
        return settings.watched_streams(self.backpressure_streams, self.thrall_stream_arn)

    @property
    def is_production(self) -> bool:
        """PROD keeps its data when the stack goes."""
        return self.stage == "PROD"

    def setting(self, var: settings.Var) -> Any:
        """A worker variable's value: from the `settings` map, else the variable's default."""
        raw = self.worker_settings.get(var.name)
        return var.default_value if raw is None else var.parse(raw)

    @property
    def pass_in_flight(self) -> int:
        """The pass's ceiling on projections in flight, every batch-index invocation together
        (batch-index's MAX_IN_FLIGHT): what the deployment can hold, the lower of the Grid's
        concurrency setting and image-projection's reserved concurrency. The operator's
        `reingest tune --max-in-flight` can lower it while the pass runs."""
        return min(self.grid_concurrency, self.projection_reserved_concurrency)

    @property
    def projection_timeout_seconds(self) -> int:
        """image-projection's timeout: the loader's, then the data services', and a margin."""
        return int(
            self.setting(settings.GRID_LOADER_TIMEOUT_SECONDS)
            + self.setting(settings.GRID_SERVICE_TIMEOUT_SECONDS)
            + c.PROJECTION_TIMEOUT_MARGIN_SECONDS
        )


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
