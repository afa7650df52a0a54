"""The settings of each function: which variables it reads, and their cross-checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from urllib.parse import urlsplit

from grid_reingest.domain.states import ProgressState
from grid_reingest.settings.env_vars import (
    BACKPRESSURE_STREAMS,
    BREAKER_FAILURE_SHARE,
    BREAKER_MIN_RESULTS,
    CHECK_MAX_IN_FLIGHT,
    CHECK_MIN_AGE_SECONDS,
    CHECK_RULE_NAME,
    CHECK_START_STATE,
    CHECK_STOP_MARGIN_SECONDS,
    CLAIM_LEASE_SECONDS,
    DRY_RUN,
    GRID_API_KEY,
    GRID_API_KEY_PARAMETER,
    GRID_API_KEY_SECRET,
    GRID_CONCURRENCY,
    GRID_DOMAIN_ROOT,
    GRID_LOADER_TIMEOUT_SECONDS,
    GRID_MAX_LOADER_BODY_BYTES,
    GRID_MAX_SERVICE_BODY_BYTES,
    GRID_SERVICE_TIMEOUT_SECONDS,
    INDEX_RULE_NAME,
    INDEX_START_STATE,
    MAX_ATTEMPTS,
    MAX_IN_FLIGHT,
    MAX_ITERATOR_AGE_MS,
    MAX_MESSAGE_BYTES,
    PACE_REFRESH_SECONDS,
    PROJECTION_FUNCTION_NAME,
    PROJECTION_TIMEOUT_SECONDS,
    RECORD_BUDGET_SECONDS,
    REPAIR_INSTANCE,
    REPAIR_INVENTORY_URL,
    REPAIR_SOURCE_BUCKET,
    REPAIR_STOP_MARGIN_SECONDS,
    REPORT_TOPIC_ARN,
    SCHEDULE_RULE_NAME,
    SERVICES,
    STAGE,
    STATE_TABLE_NAME,
    STOP_MARGIN_SECONDS,
    THRALL_CHECKPOINT_TABLE,
    THRALL_STREAM_NAME,
    WAKE_INDEX_RULE_NAME,
)
from grid_reingest.settings.var import Var, group, setting, url


@dataclass(frozen=True)
class GridSettings:
    """Where the Grid is and how to talk to it."""

    domain_root: str | None = setting(GRID_DOMAIN_ROOT)
    media_api_url: str | None = setting(
        Var(SERVICES["media-api"][0], "media-api base URL", url, "http(s) URL", optional=True)
    )
    image_loader_url: str | None = setting(
        Var(SERVICES["image-loader"][0], "image-loader base URL", url, "http(s) URL", optional=True)
    )
    leases_url: str | None = setting(
        Var(SERVICES["leases"][0], "leases base URL", url, "http(s) URL", optional=True)
    )
    collections_url: str | None = setting(
        Var(SERVICES["collections"][0], "collections base URL", url, "http(s) URL", optional=True)
    )
    metadata_editor_url: str | None = setting(
        Var(
            SERVICES["metadata-editor"][0],
            "metadata-editor base URL",
            url,
            "http(s) URL",
            optional=True,
        )
    )
    usage_url: str | None = setting(
        Var(SERVICES["usage"][0], "usage base URL", url, "http(s) URL", optional=True)
    )
    cropper_url: str | None = setting(
        Var(SERVICES["cropper"][0], "cropper base URL", url, "http(s) URL", optional=True)
    )
    api_key_parameter: str | None = setting(GRID_API_KEY_PARAMETER)
    api_key_secret: str | None = setting(GRID_API_KEY_SECRET)
    api_key: str | None = setting(GRID_API_KEY)
    loader_timeout: int = setting(GRID_LOADER_TIMEOUT_SECONDS)
    service_timeout: int = setting(GRID_SERVICE_TIMEOUT_SECONDS)
    max_loader_body: int = setting(GRID_MAX_LOADER_BODY_BYTES)
    max_service_body: int = setting(GRID_MAX_SERVICE_BODY_BYTES)
    concurrency: int = setting(GRID_CONCURRENCY)

    def url(self, service: str) -> str:
        """The base URL of a Grid service: its own variable, else derived from the domain root."""
        variable, prefix = SERVICES[service]
        own = getattr(self, _URL_FIELDS[variable])
        return own if own else f"https://{prefix}{self.domain_root}"

    def problems(self, env: Mapping[str, str]) -> list[str]:
        """What is wrong with the settings taken together."""
        found = []
        if not self.domain_root:
            missing = [v for v, _ in SERVICES.values() if not getattr(self, _URL_FIELDS[v])]
            if missing:
                found.append(
                    f"{GRID_DOMAIN_ROOT.name} is required unless every service URL is "
                    f"set; missing: {', '.join(missing)}"
                )
        sources = [
            v.name
            for v in (GRID_API_KEY_PARAMETER, GRID_API_KEY_SECRET, GRID_API_KEY)
            if env.get(v.name, "").strip()
        ]
        if len(sources) != 1:
            found.append(
                "set exactly one of GRID_API_KEY_PARAMETER, GRID_API_KEY_SECRET, GRID_API_KEY "
                f"(set: {', '.join(sources) or 'none'})"
            )
        if self.api_key and env.get("AWS_LAMBDA_FUNCTION_NAME"):
            found.append(
                "GRID_API_KEY (a plain key) is for local runs only: inside Lambda use "
                "GRID_API_KEY_PARAMETER or GRID_API_KEY_SECRET"
            )
        if env.get("AWS_LAMBDA_FUNCTION_NAME"):
            found.extend(
                f"{variable}={url!r}: inside Lambda every Grid URL must be https "
                "(the API key travels with each request)"
                for variable, url in self._urls()
                if not _secure(url)
            )
        return found

    def _urls(self) -> list[tuple[str, str]]:
        return [(v, u) for v, f in _URL_FIELDS.items() if (u := getattr(self, f))]


# Loopback never leaves the host (a Grid or proxy on the same machine), so it needs no TLS.
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _secure(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or parts.hostname in _LOOPBACK


_URL_FIELDS = {
    f.metadata["var"].name: f.name
    for f in fields(GridSettings)
    if f.metadata["var"].name.endswith("_URL")
}


@dataclass(frozen=True)
class ProjectionSettings:
    """image-projection's settings."""

    stage: str = setting(STAGE)
    max_message_bytes: int = setting(MAX_MESSAGE_BYTES)
    grid: GridSettings = group(GridSettings)


@dataclass(frozen=True)
class BatchIndexSettings:
    """batch-index's settings."""

    stage: str = setting(STAGE)
    table_name: str = setting(STATE_TABLE_NAME)
    start_state: ProgressState = setting(INDEX_START_STATE)
    max_attempts: int = setting(MAX_ATTEMPTS)
    lease_seconds: int = setting(CLAIM_LEASE_SECONDS)
    stop_margin_seconds: int = setting(STOP_MARGIN_SECONDS)
    projection_timeout_seconds: int = setting(PROJECTION_TIMEOUT_SECONDS)
    record_budget_seconds: int = setting(RECORD_BUDGET_SECONDS)
    max_message_bytes: int = setting(MAX_MESSAGE_BYTES)
    stream: str = setting(THRALL_STREAM_NAME)
    backpressure_streams: tuple[str, ...] | None = setting(BACKPRESSURE_STREAMS)
    max_iterator_age_ms: int = setting(MAX_ITERATOR_AGE_MS)
    schedule_rule: str | None = setting(SCHEDULE_RULE_NAME)
    projection_function: str | None = setting(PROJECTION_FUNCTION_NAME)
    breaker_share: float = setting(BREAKER_FAILURE_SHARE)
    breaker_min_results: int = setting(BREAKER_MIN_RESULTS)
    max_in_flight: int = setting(MAX_IN_FLIGHT)
    refresh_seconds: int = setting(PACE_REFRESH_SECONDS)
    dry_run: bool = setting(DRY_RUN)
    checkpoint_table: str | None = setting(THRALL_CHECKPOINT_TABLE)
    report_topic: str | None = setting(REPORT_TOPIC_ARN)
    # Projecting in-process needs the Grid itself; invoking image-projection does not.
    grid: GridSettings | None = group(GridSettings, unless="projection_function")

    @property
    def watched_streams(self) -> tuple[str, ...]:
        """The streams whose iterator age gates work: thrall's stream unless set otherwise."""
        return watched_streams(self.backpressure_streams or (), self.stream)

    @property
    def idle_seconds(self) -> float:
        """A worker that can start nothing this long, with nothing in flight, ends."""
        return float(self.refresh_seconds)

    def problems(self, env: Mapping[str, str]) -> list[str]:
        """What is wrong with the settings taken together."""
        return _margin_problems(
            STOP_MARGIN_SECONDS,
            self.stop_margin_seconds,
            PROJECTION_TIMEOUT_SECONDS,
            self.projection_timeout_seconds,
            self.record_budget_seconds,
        )


@dataclass(frozen=True)
class BatchCheckSettings:
    """batch-check's settings."""

    stage: str = setting(STAGE)
    table_name: str = setting(STATE_TABLE_NAME)
    start_state: ProgressState = setting(CHECK_START_STATE)
    # batch-check runs beside batch-index: it is done only once batch-index is too.
    index_start_state: ProgressState = setting(INDEX_START_STATE)
    min_age_seconds: int = setting(CHECK_MIN_AGE_SECONDS)
    max_attempts: int = setting(MAX_ATTEMPTS)
    lease_seconds: int = setting(CLAIM_LEASE_SECONDS)
    stop_margin_seconds: int = setting(CHECK_STOP_MARGIN_SECONDS)
    record_budget_seconds: int = setting(RECORD_BUDGET_SECONDS)
    breaker_share: float = setting(BREAKER_FAILURE_SHARE)
    breaker_min_results: int = setting(BREAKER_MIN_RESULTS)
    max_in_flight: int = setting(CHECK_MAX_IN_FLIGHT)
    refresh_seconds: int = setting(PACE_REFRESH_SECONDS)
    schedule_rule: str | None = setting(SCHEDULE_RULE_NAME)
    index_rule: str | None = setting(WAKE_INDEX_RULE_NAME)
    report_topic: str | None = setting(REPORT_TOPIC_ARN)
    grid: GridSettings = group(GridSettings)

    @property
    def idle_seconds(self) -> float:
        """A worker that can start nothing this long, with nothing in flight, ends."""
        return float(self.refresh_seconds)

    def problems(self, env: Mapping[str, str]) -> list[str]:
        """What is wrong with the settings taken together."""
        if self.grid is None:
            return []
        return _margin_problems(
            CHECK_STOP_MARGIN_SECONDS,
            self.stop_margin_seconds,
            GRID_SERVICE_TIMEOUT_SECONDS,
            self.grid.service_timeout,
            self.record_budget_seconds,
        )


@dataclass(frozen=True)
class StateCountsSettings:
    """state-counts' settings: the table whose stream it counts (its `~counts` item)."""

    stage: str = setting(STAGE)
    table_name: str = setting(STATE_TABLE_NAME)


def _margin_problems(
    margin_var: Var, margin: int, work_var: Var, work_timeout: int, budget: int
) -> list[str]:
    """The stop margin must leave time for the last work to finish, then to publish and record
    it: otherwise an invocation can end holding images whose outcome it never wrote."""
    if margin > work_timeout + budget:
        return []
    return [
        f"{margin_var.name}={margin} must be more than {work_var.name}={work_timeout} + "
        f"{RECORD_BUDGET_SECONDS.name}={budget}: the last {work_var.name.split('_')[0].lower()} "
        "work could end with no time left to publish and record it"
    ]


def stream_name(stream: str) -> str:
    """A Kinesis stream's name from its name or ARN."""
    return stream.rsplit("/", 1)[-1] if stream.startswith("arn:") else stream


def watched_streams(backpressure_streams: tuple[str, ...], stream: str) -> tuple[str, ...]:
    """The streams whose iterator age gates batch-index: thrall's (`stream`, a name or
    ARN) unless others are named."""
    return backpressure_streams or (stream_name(stream),)


@dataclass(frozen=True)
class RepairSettings:
    """The scheduled repair's settings."""

    stage: str = setting(STAGE)
    table_name: str = setting(STATE_TABLE_NAME)
    source_bucket: str | None = setting(REPAIR_SOURCE_BUCKET)
    inventory_url: str | None = setting(REPAIR_INVENTORY_URL)
    instance: str | None = setting(REPAIR_INSTANCE)
    report_topic: str | None = setting(REPORT_TOPIC_ARN)
    index_rule: str = setting(INDEX_RULE_NAME)
    check_rule: str = setting(CHECK_RULE_NAME)
    stop_margin_seconds: int = setting(REPAIR_STOP_MARGIN_SECONDS)

    def problems(self, env: Mapping[str, str]) -> list[str]:
        """What is wrong with the settings taken together: exactly one source."""
        if bool(self.source_bucket) == bool(self.inventory_url):
            return [
                f"set exactly one of {REPAIR_SOURCE_BUCKET.name} and {REPAIR_INVENTORY_URL.name}"
                " (where the scheduled repair finds the Grid's originals)"
            ]
        return []
