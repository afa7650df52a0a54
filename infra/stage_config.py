"""One stage of cdk.json as a pydantic model: each key's type, range and meaning.

Keys that are worker variables take their checks from that variable's one
declaration in `grid_reingest.settings`. `infra/config.py` loads a stage with
it and names every problem by its key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from grid_reingest import settings
from infra import constants as c

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
