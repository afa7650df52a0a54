"""The settings of each function: which variables it reads, and their cross-checks.

Each is a frozen pydantic dataclass whose fields are the variables of
`env_vars.py`; `loading.load` fills one from the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from grid_reingest.domain.states import ProgressState
from grid_reingest.settings import env_vars as v
from grid_reingest.settings.var import Var

# Fields are filled by their variables' names (the environment) or their own (replace()).
CONFIG = ConfigDict(validate_by_name=True, validate_by_alias=True)


def group(unless: Var | None = None) -> Any:
    """A nested group of settings read from the same environment; with `unless`, not needed
    (None) when that variable is set."""
    return Field(None, json_schema_extra={"unless": unless.name} if unless else None)


@dataclass(frozen=True, config=CONFIG)
class GridSettings:
    """Where the Grid is and how to talk to it."""

    domain_root: Annotated[str | None, v.GRID_DOMAIN_ROOT.field]
    media_api_url: Annotated[str | None, v.SERVICE_URLS["media-api"].field]
    image_loader_url: Annotated[str | None, v.SERVICE_URLS["image-loader"].field]
    leases_url: Annotated[str | None, v.SERVICE_URLS["leases"].field]
    collections_url: Annotated[str | None, v.SERVICE_URLS["collections"].field]
    metadata_editor_url: Annotated[str | None, v.SERVICE_URLS["metadata-editor"].field]
    usage_url: Annotated[str | None, v.SERVICE_URLS["usage"].field]
    cropper_url: Annotated[str | None, v.SERVICE_URLS["cropper"].field]
    api_key_parameter: Annotated[str | None, v.GRID_API_KEY_PARAMETER.field]
    api_key_secret: Annotated[str | None, v.GRID_API_KEY_SECRET.field]
    api_key: Annotated[str | None, v.GRID_API_KEY.field]
    loader_timeout: Annotated[int, v.GRID_LOADER_TIMEOUT_SECONDS.field]
    service_timeout: Annotated[int, v.GRID_SERVICE_TIMEOUT_SECONDS.field]
    max_loader_body: Annotated[int, v.GRID_MAX_LOADER_BODY_BYTES.field]
    max_service_body: Annotated[int, v.GRID_MAX_SERVICE_BODY_BYTES.field]
    concurrency: Annotated[int, v.GRID_CONCURRENCY.field]

    def url(self, service: str) -> str:
        """The base URL of a Grid service: its own variable, else derived from the domain root."""
        own = self._own_urls().get(service)
        return own if own else f"https://{v.SERVICES[service][1]}{self.domain_root}"

    def _own_urls(self) -> dict[str, str | None]:
        return {service: getattr(self, _URL_FIELDS[service]) for service in v.SERVICES}

    def problems(self, env: Mapping[str, str]) -> list[str]:
        """What is wrong with the settings taken together."""
        found = []
        own = self._own_urls()
        if not self.domain_root:
            missing = [v.SERVICES[s][0] for s, url in own.items() if not url]
            if missing:
                found.append(
                    f"{v.GRID_DOMAIN_ROOT.name} is required unless every service URL is "
                    f"set; missing: {', '.join(missing)}"
                )
        keys = (v.GRID_API_KEY_PARAMETER, v.GRID_API_KEY_SECRET, v.GRID_API_KEY)
        sources = [key.name for key in keys if env.get(key.name, "").strip()]
        if len(sources) != 1:
            found.append(
                "set exactly one of GRID_API_KEY_PARAMETER, GRID_API_KEY_SECRET, GRID_API_KEY "
                f"(set: {', '.join(sources) or 'none'})"
            )
        if env.get("AWS_LAMBDA_FUNCTION_NAME"):
            if self.api_key:
                found.append(
                    "GRID_API_KEY (a plain key) is for local runs only: inside Lambda use "
                    "GRID_API_KEY_PARAMETER or GRID_API_KEY_SECRET"
                )
            found.extend(
                f"{v.SERVICES[service][0]}={url!r}: inside Lambda every Grid URL must be https "
                "(the API key travels with each request)"
                for service, url in own.items()
                if url and not _secure(url)
            )
        return found


# Service name -> the GridSettings field of its own URL.
_URL_FIELDS = {service: service.replace("-", "_") + "_url" for service in v.SERVICES}
# Loopback never leaves the host (a Grid or proxy on the same machine), so it needs no TLS.
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _secure(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or parts.hostname in _LOOPBACK


@dataclass(frozen=True, config=CONFIG)
class LoopSettings:
    """What both scheduled workers' loops read alike: attempts, leases, the record budget, the
    failure rule and the pace's refresh."""

    max_attempts: Annotated[int, v.MAX_ATTEMPTS.field]
    lease_seconds: Annotated[int, v.CLAIM_LEASE_SECONDS.field]
    record_budget_seconds: Annotated[int, v.RECORD_BUDGET_SECONDS.field]
    breaker_share: Annotated[float, v.BREAKER_FAILURE_SHARE.field]
    breaker_min_results: Annotated[int, v.BREAKER_MIN_RESULTS.field]
    refresh_seconds: Annotated[int, v.PACE_REFRESH_SECONDS.field]

    @property
    def idle_seconds(self) -> float:
        """A worker that can start nothing this long, with nothing in flight, ends."""
        return float(self.refresh_seconds)

    def margin_problems(self, margin: Var, value: int, work: Var, work_seconds: int) -> list[str]:
        """The stop margin `margin` (=`value`) against the longest `work` and the record budget."""
        return stop_margin_problems(
            margin.name, value, work.name, work_seconds, self.record_budget_seconds
        )


@dataclass(frozen=True, config=CONFIG)
class ProjectionSettings:
    """image-projection's settings."""

    stage: Annotated[str, v.STAGE.field]
    max_message_bytes: Annotated[int, v.MAX_MESSAGE_BYTES.field]
    grid: Annotated[GridSettings, group()]


@dataclass(frozen=True, config=CONFIG)
class BatchIndexSettings:
    """batch-index's settings."""

    stage: Annotated[str, v.STAGE.field]
    table_name: Annotated[str, v.STATE_TABLE_NAME.field]
    start_state: Annotated[ProgressState, v.INDEX_START_STATE.field]
    loop: Annotated[LoopSettings, group()]
    stop_margin_seconds: Annotated[int, v.STOP_MARGIN_SECONDS.field]
    projection_timeout_seconds: Annotated[int, v.PROJECTION_TIMEOUT_SECONDS.field]
    max_message_bytes: Annotated[int, v.MAX_MESSAGE_BYTES.field]
    stream: Annotated[str, v.THRALL_STREAM_NAME.field]
    backpressure_streams: Annotated[tuple[str, ...] | None, v.BACKPRESSURE_STREAMS.field]
    max_iterator_age_ms: Annotated[int, v.MAX_ITERATOR_AGE_MS.field]
    schedule_rule: Annotated[str | None, v.SCHEDULE_RULE_NAME.field]
    projection_function: Annotated[str | None, v.PROJECTION_FUNCTION_NAME.field]
    max_in_flight: Annotated[int, v.MAX_IN_FLIGHT.field]
    dry_run: Annotated[bool, v.DRY_RUN.field]
    checkpoint_table: Annotated[str | None, v.THRALL_CHECKPOINT_TABLE.field]
    report_topic: Annotated[str | None, v.REPORT_TOPIC_ARN.field]
    # Projecting in-process needs the Grid itself; invoking image-projection does not.
    grid: Annotated[GridSettings | None, group(unless=v.PROJECTION_FUNCTION_NAME)]

    @property
    def watched_streams(self) -> tuple[str, ...]:
        """The streams whose iterator age gates work: thrall's stream unless set otherwise."""
        return watched_streams(self.backpressure_streams or (), self.stream)

    def problems(self, env: Mapping[str, str]) -> list[str]:
        """What is wrong with the settings taken together: the stop margin against a projection."""
        margin, work = v.STOP_MARGIN_SECONDS, v.PROJECTION_TIMEOUT_SECONDS
        return self.loop.margin_problems(
            margin, self.stop_margin_seconds, work, self.projection_timeout_seconds
        )


@dataclass(frozen=True, config=CONFIG)
class BatchCheckSettings:
    """batch-check's settings."""

    stage: Annotated[str, v.STAGE.field]
    table_name: Annotated[str, v.STATE_TABLE_NAME.field]
    start_state: Annotated[ProgressState, v.CHECK_START_STATE.field]
    # batch-check runs beside batch-index: it is done only once batch-index is too.
    index_start_state: Annotated[ProgressState, v.INDEX_START_STATE.field]
    min_age_seconds: Annotated[int, v.CHECK_MIN_AGE_SECONDS.field]
    first_look_seconds: Annotated[int, v.CHECK_FIRST_LOOK_SECONDS.field]
    loop: Annotated[LoopSettings, group()]
    stop_margin_seconds: Annotated[int, v.CHECK_STOP_MARGIN_SECONDS.field]
    max_in_flight: Annotated[int, v.CHECK_MAX_IN_FLIGHT.field]
    schedule_rule: Annotated[str | None, v.SCHEDULE_RULE_NAME.field]
    index_rule: Annotated[str | None, v.WAKE_INDEX_RULE_NAME.field]
    report_topic: Annotated[str | None, v.REPORT_TOPIC_ARN.field]
    grid: Annotated[GridSettings, group()]

    def problems(self, env: Mapping[str, str]) -> list[str]:
        """What is wrong with the settings taken together: the stop margin against a lookup."""
        margin, work = v.CHECK_STOP_MARGIN_SECONDS, v.GRID_SERVICE_TIMEOUT_SECONDS
        return self.loop.margin_problems(
            margin, self.stop_margin_seconds, work, self.grid.service_timeout
        )


@dataclass(frozen=True, config=CONFIG)
class StateCountsSettings:
    """state-counts' settings: the table whose stream it counts (its `~counts` item)."""

    stage: Annotated[str, v.STAGE.field]
    table_name: Annotated[str, v.STATE_TABLE_NAME.field]


@dataclass(frozen=True, config=CONFIG)
class RepairSettings:
    """The scheduled repair's settings."""

    stage: Annotated[str, v.STAGE.field]
    table_name: Annotated[str, v.STATE_TABLE_NAME.field]
    source_bucket: Annotated[str | None, v.REPAIR_SOURCE_BUCKET.field]
    inventory_url: Annotated[str | None, v.REPAIR_INVENTORY_URL.field]
    instance: Annotated[str | None, v.REPAIR_INSTANCE.field]
    report_topic: Annotated[str | None, v.REPORT_TOPIC_ARN.field]
    index_rule: Annotated[str, v.INDEX_RULE_NAME.field]
    check_rule: Annotated[str, v.CHECK_RULE_NAME.field]
    stop_margin_seconds: Annotated[int, v.REPAIR_STOP_MARGIN_SECONDS.field]

    def problems(self, env: Mapping[str, str]) -> list[str]:
        """What is wrong with the settings taken together: exactly one source."""
        if bool(self.source_bucket) == bool(self.inventory_url):
            return [
                f"set exactly one of {v.REPAIR_SOURCE_BUCKET.name} and "
                f"{v.REPAIR_INVENTORY_URL.name} (where the scheduled repair finds the Grid's "
                "originals)"
            ]
        return []


def stop_margin_problems(
    margin_name: str, margin: int, work_name: str, work_seconds: int, budget: int
) -> list[str]:
    """The stop margin must leave time for the last work to finish, then to publish and record
    it: otherwise an invocation can end holding images whose outcome it never wrote."""
    needed = work_seconds + budget
    if margin > needed:
        return []
    return [
        f"{margin_name}={margin} must exceed {work_name} ({work_seconds} s) plus "
        f"{v.RECORD_BUDGET_SECONDS.name} ({budget} s), {needed} s, so that what an invocation "
        "works on last is published and recorded before it ends"
    ]


def stream_name(stream: str) -> str:
    """A Kinesis stream's name from its name or ARN."""
    return stream.rsplit("/", 1)[-1] if stream.startswith("arn:") else stream


def watched_streams(backpressure_streams: tuple[str, ...], stream: str) -> tuple[str, ...]:
    """The streams whose iterator age gates batch-index: thrall's (`stream`, a name or
    ARN) unless others are named."""
    return backpressure_streams or (stream_name(stream),)
