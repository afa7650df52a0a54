"""Each stage's configuration, read from CDK context (cdk.json) and validated.

Every problem is reported at once, each naming its context key, e.g.
`stages.PROD.batchIndex.reservedConcurrency`. Worker variables are checked by
the parsers in `grid_reingest.settings`, so the stack cannot deploy a value a
worker would refuse at cold start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_STREAM_ARN = re.compile(
    r"^arn:aws[a-z-]*:kinesis:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):stream/"
    r"(?P<name>[A-Za-z0-9_.-]{1,128})$"
)
_KEY_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):key/[A-Za-z0-9-]+$"
)
_TOPIC_ARN = re.compile(
    r"^arn:aws[a-z-]*:sns:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):[A-Za-z0-9_-]{1,256}$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PARAMETER = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
_DOMAIN = re.compile(r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$")
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")

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
    )
) | frozenset(variable for variable, _ in settings.SERVICES.values())

# What each function's settings are loaded with at run time.
SETTINGS_CLASSES: Mapping[str, type] = {
    names.IMAGE_PROJECTION: settings.ProjectionSettings,
    names.BATCH_INDEX: settings.BatchIndexSettings,
    names.BATCH_CHECK: settings.BatchCheckSettings,
    names.STATE_COUNTS: settings.StateCountsSettings,
}
# Every variable some worker reads, by name.
_ALL_VARS: dict[str, settings.Var] = {
    v.name: v for cls in SETTINGS_CLASSES.values() for v in settings.variables(cls)
}


@dataclass(frozen=True)
class WorkerConfig:
    """One scheduled worker: how often it is kept alive, how many invocations and images at once."""

    schedule_minutes: int
    reserved_concurrency: int
    max_in_flight: int | None  # images at once, at most (batch-index: from pass_in_flight)


@dataclass(frozen=True)
class RepairConfig:
    """The stage's scheduled repair (cdk.json `repair`): when, from where, told to whom."""

    schedule: str  # an EventBridge schedule expression: rate(...) or cron(...)
    source_bucket: str | None  # the image bucket, listed; else
    inventory_url: str | None  # the newest S3 Inventory manifest under this s3:// prefix
    instance: str | None  # a multi-instance Grid's instance
    report_topic_arn: str


@dataclass(frozen=True)
class StageConfig:
    """Everything one stage's stack is built from."""

    stage: str
    region: str
    thrall_stream_arn: str
    thrall_stream_key_arn: str
    api_key_parameter: str
    api_key_kms_key_arn: str | None
    grid_domain_root: str | None
    grid_service_urls: Mapping[str, str]  # URL variable name -> URL
    grid_concurrency: int
    max_iterator_age_ms: int
    backpressure_streams: tuple[str, ...]  # empty: thrall's stream
    batch_index: WorkerConfig
    batch_check: WorkerConfig
    projection_reserved_concurrency: int
    log_retention_days: int
    unknown_failure_alarm_share: float
    alarm_topic_arn: str | None  # an existing topic the alarms notify
    alarm_email: str | None  # else: a topic of the stack's own, with this subscriber
    projection_function_url: bool
    worker_settings: Mapping[str, str]  # extra worker variables, by name
    thrall_checkpoint_table: str | None  # thrall's KCL lease table; None: not read
    repair: RepairConfig | None = None  # the scheduled repair; None: none (the default)

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
        return var.parse(self.worker_settings.get(var.name, var.default))

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
        return (
            self.setting(settings.GRID_LOADER_TIMEOUT_SECONDS)
            + self.setting(settings.GRID_SERVICE_TIMEOUT_SECONDS)
            + c.PROJECTION_TIMEOUT_MARGIN_SECONDS
        )


class _Reader:
    """Reads typed values out of one stage's context, collecting problems by key."""

    def __init__(self, stage: str, raw: Mapping[str, Any]) -> None:
        self.stage = stage
        self.raw = raw
        self.problems: list[str] = []

    def key(self, *path: str) -> str:
        return ".".join((c.STAGES_CONTEXT_KEY, self.stage, *path))

    def _get(self, path: tuple[str, ...], required: bool, meaning: str) -> Any:
        node: Any = self.raw
        for part in path:
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is None and required:
            self.problems.append(f"{self.key(*path)} is required: {meaning}")
        return node

    def text(self, *path: str, meaning: str, pattern: re.Pattern[str], required: bool = True):
        value = self._get(path, required, meaning)
        if value is None:
            return None
        if not isinstance(value, str) or not pattern.match(value):
            self.problems.append(f"{self.key(*path)}={value!r} is invalid: {meaning}")
            return None
        return value

    def integer(self, *path: str, meaning: str, lo: int, hi: int) -> int:
        value = self._get(path, True, f"{meaning} ({lo}..{hi})")
        if value is None:
            return lo
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.problems.append(
                f"{self.key(*path)}={value!r} is invalid: {meaning}; a whole number {lo}..{hi}"
            )
            return lo
        return value

    def fraction(self, *path: str, meaning: str) -> float:
        value = self._get(path, True, f"{meaning} (0 < x <= 1)")
        if value is None:
            return 1.0
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            self.problems.append(f"{self.key(*path)}={value!r} is invalid: {meaning}; 0 < x <= 1")
            return 1.0
        return float(value)

    def choice(self, *path: str, meaning: str, allowed: tuple[int, ...]) -> int:
        value = self._get(path, True, f"{meaning} (one of {allowed})")
        if value is None:
            return allowed[0]
        if value not in allowed or isinstance(value, bool):
            self.problems.append(
                f"{self.key(*path)}={value!r} is invalid: {meaning}; one of {allowed}"
            )
            return allowed[0]
        return value

    def var(self, var: settings.Var, *path: str, required: bool = True) -> Any:
        """A value checked by a worker variable's own parser."""
        value = self._get(path, required, f"{var.help} ({var.allowed})")
        if value is None:
            return None
        try:
            return var.parse(str(value))
        except ValueError as error:
            self.problems.append(
                f"{self.key(*path)}={value!r} is invalid ({error}): {var.help}; "
                f"allowed: {var.allowed}"
            )
            return None

    def flag(self, *path: str, meaning: str) -> bool:
        value = self._get(path, False, meaning)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.problems.append(
                f"{self.key(*path)}={value!r} is invalid: {meaning}; true or false"
            )
            return False
        return value

    def arn(self, *path: str, meaning: str, pattern: re.Pattern[str], region: str, required=True):
        value = self.text(*path, meaning=meaning, pattern=pattern, required=required)
        if value is not None and region and pattern.match(value)["region"] != region:
            self.problems.append(
                f"{self.key(*path)}={value!r} is in another region than the stage's ({region})"
            )
            return None
        return value


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
    read = _Reader(stage, raw)
    region = read.text("region", meaning="the stage's AWS region, e.g. eu-west-1", pattern=_REGION)
    stream_arn = read.arn(
        "thrallStreamArn",
        meaning="ARN of thrall's low-priority Kinesis stream "
        "(arn:aws:kinesis:<region>:<account>:stream/<name>)",
        pattern=_STREAM_ARN,
        region=region,
    )
    key_arn = read.arn(
        "thrallStreamKeyArn",
        meaning="ARN of the KMS key that encrypts thrall's stream "
        "(arn:aws:kms:<region>:<account>:key/<id>; not an alias)",
        pattern=_KEY_ARN,
        region=region,
    )
    api_key_parameter = read.text(
        "apiKeyParameter",
        meaning="name of the SecureString SSM parameter holding the Grid API key, "
        "e.g. /TEST/media-service/grid-reingest/api-key",
        pattern=_PARAMETER,
    )
    api_key_kms_key_arn = read.arn(
        "apiKeyKmsKeyArn",
        meaning="ARN of the customer-managed KMS key of the API-key parameter "
        "(leave out for the default aws/ssm key)",
        pattern=_KEY_ARN,
        region=region,
        required=False,
    )
    urls = raw.get("gridServiceUrls") or {}
    service_urls: dict[str, str] = {}
    if not isinstance(urls, Mapping):
        read.problems.append(f"{read.key('gridServiceUrls')} must map service names to URLs")
        urls = {}
    for service in urls:
        if service not in settings.SERVICES:
            read.problems.append(
                f"{read.key('gridServiceUrls', service)}: unknown service; known: "
                f"{', '.join(settings.SERVICES)}"
            )
            continue
        variable = settings.SERVICES[service][0]
        parsed = read.var(_ALL_VARS[variable], "gridServiceUrls", service)
        if parsed:
            service_urls[variable] = parsed
    domain_root = read.text(
        "gridDomainRoot",
        meaning="the Grid's domain root; each service is https://<prefix><root> "
        "(required unless gridServiceUrls names every service)",
        pattern=_DOMAIN,
        required=len(service_urls) < len(settings.SERVICES),
    )
    backpressure = raw.get("backpressureStreamNames") or []
    if not isinstance(backpressure, list) or not all(
        isinstance(n, str) and _STREAM_NAME.match(n) for n in backpressure
    ):
        read.problems.append(
            f"{read.key('backpressureStreamNames')}={backpressure!r} is invalid: "
            "a list of Kinesis stream names whose iterator age gates batch-index"
        )
        backpressure = []

    checkpoint_table = raw.get("thrallCheckpointTable")
    if checkpoint_table is not None and not isinstance(checkpoint_table, str):
        read.problems.append(
            f"{read.key('thrallCheckpointTable')}={checkpoint_table!r} is invalid: "
            f"{settings.THRALL_CHECKPOINT_TABLE.help}; allowed: "
            f"{settings.THRALL_CHECKPOINT_TABLE.allowed}"
        )
        checkpoint_table = None
    else:
        checkpoint_table = read.var(
            settings.THRALL_CHECKPOINT_TABLE, "thrallCheckpointTable", required=False
        )

    def worker(name: str, in_flight: settings.Var | None) -> WorkerConfig:
        return WorkerConfig(
            schedule_minutes=read.integer(
                name,
                "scheduleRateMinutes",
                meaning=f"minutes between two runs of {name}",
                lo=c.SCHEDULE_MINUTES_RANGE[0],
                hi=c.SCHEDULE_MINUTES_RANGE[1],
            ),
            reserved_concurrency=read.integer(
                name,
                "reservedConcurrency",
                meaning=f"most {name} invocations at once",
                lo=c.RESERVED_CONCURRENCY_RANGE[0],
                hi=c.RESERVED_CONCURRENCY_RANGE[1],
            ),
            max_in_flight=None if in_flight is None else read.var(in_flight, name, "maxInFlight"),
        )

    worker_settings = _worker_settings(read, raw.get("settings") or {})
    _check_alarm_target(read, raw)
    _check_no_index_in_flight(read, raw)
    config = StageConfig(
        stage=stage,
        region=region or "",
        thrall_stream_arn=stream_arn or "",
        thrall_stream_key_arn=key_arn or "",
        api_key_parameter=api_key_parameter or "",
        api_key_kms_key_arn=api_key_kms_key_arn,
        grid_domain_root=domain_root,
        grid_service_urls=service_urls,
        grid_concurrency=read.var(settings.GRID_CONCURRENCY, "gridConcurrency"),
        max_iterator_age_ms=read.var(settings.MAX_ITERATOR_AGE_MS, "maxIteratorAgeMs"),
        backpressure_streams=tuple(backpressure),
        batch_index=worker("batchIndex", None),
        batch_check=worker("batchCheck", settings.CHECK_MAX_IN_FLIGHT),
        projection_reserved_concurrency=read.integer(
            "imageProjection",
            "reservedConcurrency",
            meaning="most image-projection invocations at once; with gridConcurrency, "
            "the pass's ceiling on projections in flight",
            lo=c.PROJECTION_RESERVED_CONCURRENCY_RANGE[0],
            hi=c.PROJECTION_RESERVED_CONCURRENCY_RANGE[1],
        ),
        log_retention_days=read.choice(
            "logRetentionDays",
            meaning="days the functions' logs are kept",
            allowed=c.LOG_RETENTION_DAYS,
        ),
        unknown_failure_alarm_share=read.fraction(
            "unknownFailureAlarmShare",
            meaning="share of claimed images failing for unknown reasons that raises an alarm",
        ),
        alarm_topic_arn=read.arn(
            "alarmTopicArn",
            meaning="an existing SNS topic the alarms notify "
            "(arn:aws:sns:<region>:<account>:<name>)",
            pattern=_TOPIC_ARN,
            region=region,
            required=False,
        ),
        alarm_email=read.text(
            "alarmEmail",
            meaning="an email address the stack's own alarm topic notifies",
            pattern=_EMAIL,
            required=False,
        ),
        projection_function_url=read.flag(
            "projectionFunctionUrl",
            meaning="give image-projection a public Function URL",
        ),
        worker_settings=worker_settings,
        thrall_checkpoint_table=checkpoint_table,
        repair=_repair(read, region),
    )
    if not read.problems:
        read.problems.extend(_cross_checks(config))
    if read.problems:
        raise ConfigError(stage, read.problems)
    return config


# EventBridge's schedule expressions (its own syntax is checked when deployed).
_SCHEDULE = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$")
_REPAIR_KEYS = frozenset({"schedule", "sourceBucket", "inventory", "instance", "reportTopicArn"})


def _repair(read: _Reader, region: str | None) -> RepairConfig | None:
    """The stage's `repair`, or None when it has none (off unless cdk.json turns it on)."""
    raw = read.raw.get("repair")
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) - _REPAIR_KEYS:
        unknown = sorted(set(raw) - _REPAIR_KEYS) if isinstance(raw, Mapping) else raw
        read.problems.append(
            f"{read.key('repair')}: unknown {unknown!r}; a scheduled repair takes "
            f"{', '.join(sorted(_REPAIR_KEYS))}"
        )
        return None
    schedule = read.text(
        "repair",
        "schedule",
        meaning="when the repair starts a pass: an EventBridge expression, e.g. "
        "cron(0 3 ? * SUN *) or rate(7 days)",
        pattern=_SCHEDULE,
    )
    bucket = read.var(settings.REPAIR_SOURCE_BUCKET, "repair", "sourceBucket", required=False)
    inventory = read.var(settings.REPAIR_INVENTORY_URL, "repair", "inventory", required=False)
    if bool(bucket) == bool(inventory):
        read.problems.append(
            f"{read.key('repair')}: set exactly one of sourceBucket (the Grid's image bucket, "
            "listed) and inventory (s3://BUCKET/PREFIX/ of its S3 Inventory reports)"
        )
    topic = read.arn(
        "repair",
        "reportTopicArn",
        meaning="the SNS topic each scheduled pass's report is published on "
        "(arn:aws:sns:<region>:<account>:<name>)",
        pattern=_TOPIC_ARN,
        region=region or "",
    )
    return RepairConfig(
        schedule=schedule or "",
        source_bucket=bucket,
        inventory_url=inventory,
        instance=read.var(settings.REPAIR_INSTANCE, "repair", "instance", required=False),
        report_topic_arn=topic or "",
    )


def _check_no_index_in_flight(read: _Reader, raw: Mapping[str, Any]) -> None:
    index = raw.get("batchIndex")
    if isinstance(index, Mapping) and "maxInFlight" in index:
        read.problems.append(
            f"{read.key('batchIndex', 'maxInFlight')} is no longer read: the pass's ceiling on "
            "projections in flight (all batch-index invocations together) is the lower of "
            f"{read.key('gridConcurrency')} and "
            f"{read.key('imageProjection', 'reservedConcurrency')}; remove it and set those "
            "(`reingest tune --max-in-flight` lowers it while a pass runs)"
        )


def _check_alarm_target(read: _Reader, raw: Mapping[str, Any]) -> None:
    topic, email = raw.get("alarmTopicArn"), raw.get("alarmEmail")
    if topic and email:
        read.problems.append(
            f"{read.key('alarmTopicArn')} and {read.key('alarmEmail')} are both set: "
            "set one (an existing topic, or an email for a topic of the stack's own)"
        )
    elif not (topic or email) and read.stage in c.ALERTED_STAGES:
        read.problems.append(
            f"{read.key('alarmTopicArn')} or {read.key('alarmEmail')} is required for "
            f"stage {read.stage}: its alarms must notify somebody (an existing SNS topic's "
            "ARN, or an email address for a topic of the stack's own)"
        )


def _worker_settings(read: _Reader, raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        read.problems.append(f"{read.key('settings')} must map worker variable names to values")
        return {}
    values: dict[str, str] = {}
    for name, value in raw.items():
        if name in _WIRED:
            read.problems.append(
                f"{read.key('settings', name)}: {name} is set by the stack itself "
                "(see docs/infra.md for the key that sets it)"
            )
        elif name not in _ALL_VARS:
            read.problems.append(
                f"{read.key('settings', name)}: no worker reads {name}; known: "
                f"{', '.join(sorted(set(_ALL_VARS) - _WIRED))}"
            )
        else:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            if read.var(_ALL_VARS[name], "settings", name) is not None:
                values[name] = text
    return values


def _cross_checks(config: StageConfig) -> list[str]:
    """What is wrong with the values taken together."""
    problems = []
    key = f"{c.STAGES_CONTEXT_KEY}.{config.stage}.settings"
    lease = config.setting(settings.CLAIM_LEASE_SECONDS)
    if lease <= c.WORKER_TIMEOUT_SECONDS:
        problems.append(
            f"{key}.{settings.CLAIM_LEASE_SECONDS.name}={lease} must exceed the workers' "
            f"timeout ({c.WORKER_TIMEOUT_SECONDS} s): a live worker's claims would be taken"
        )
    projection = config.projection_timeout_seconds
    if projection > c.LAMBDA_MAX_TIMEOUT_SECONDS:
        problems.append(
            f"{key}: {settings.GRID_LOADER_TIMEOUT_SECONDS.name} + "
            f"{settings.GRID_SERVICE_TIMEOUT_SECONDS.name} + "
            f"{c.PROJECTION_TIMEOUT_MARGIN_SECONDS} s = {projection} s exceeds Lambda's "
            f"{c.LAMBDA_MAX_TIMEOUT_SECONDS} s"
        )
    margin = config.setting(settings.STOP_MARGIN_SECONDS)
    budget = config.setting(settings.RECORD_BUDGET_SECONDS)
    needed = projection + budget
    if not needed < margin < c.WORKER_TIMEOUT_SECONDS:
        problems.append(
            f"{key}.{settings.STOP_MARGIN_SECONDS.name}={margin} must exceed "
            f"image-projection's timeout ({projection} s) plus "
            f"{settings.RECORD_BUDGET_SECONDS.name} ({budget} s), {needed} s, so that what an "
            "invocation projects last is published and recorded before it ends, and stay "
            f"below the worker timeout ({c.WORKER_TIMEOUT_SECONDS} s)"
        )
    return problems
