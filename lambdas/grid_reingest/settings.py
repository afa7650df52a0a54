"""Each worker's settings, read once from the environment and validated.

This is the one place the variable names are defined: the CDK app imports them
to wire the Lambdas. Every variable documents itself (name, meaning, default,
allowed values); `describe()` prints them all, and a bad environment is
reported in one error that lists every problem.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from grid_reingest.domain.states import ProgressState

# Kinesis's limit on one record: data plus partition key.
KINESIS_RECORD_MAX_BYTES = 1024 * 1024


class SettingsError(ValueError):
    """The environment does not configure a worker; the message lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n  - " + "\n  - ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Var:
    """One environment variable: its name, what it means, its default and what it allows."""

    name: str
    help: str
    parse: Callable[[str], Any]
    allowed: str
    default: str | None = None  # None: required
    optional: bool = False  # True: may be absent (the value is then None)

    @property
    def default_value(self) -> Any:
        """The default, parsed (None for a required variable)."""
        return None if self.default is None else self.parse(self.default)


def _integer(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not lo <= value <= hi:
            raise ValueError(f"{value} is out of range")
        return value

    return parse


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0 < value <= 1:
        raise ValueError(f"{value} is out of range")
    return value


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"{raw!r} is not a boolean")


def _text(raw: str) -> str:
    if any(c.isspace() for c in raw):
        raise ValueError("contains whitespace")
    return raw


def _url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("is not an http(s) URL")
    return raw.rstrip("/")


def _names(raw: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    if not names:
        raise ValueError("names no stream")
    return names


def _worker_state(*forbidden: ProgressState) -> Callable[[str], ProgressState]:
    def parse(raw: str) -> ProgressState:
        state = ProgressState.parse(raw)
        if state in forbidden or state.is_claim:
            raise ValueError(f"state {int(state)} cannot be a start state here")
        return state

    return parse


def _setting(var: Var) -> Any:
    return field(metadata={"var": var})


def _group(cls: type, unless: str | None = None) -> Any:
    """A nested group of settings; with `unless`, not needed (None) when that field is set."""
    return field(default=None, metadata={"group": cls, "unless": unless})


# -- the variables, by name (the CDK app imports these) -----------------------

STAGE = Var("STAGE", "Stage name, a dimension of every metric", _text, "any word", "DEV")
STATE_TABLE_NAME = Var("STATE_TABLE_NAME", "The state table's name", _text, "a table name")

GRID_DOMAIN_ROOT = Var(
    "GRID_DOMAIN_ROOT",
    "The Grid's domain root; each service is https://<prefix><root>",
    _text,
    "a domain name, e.g. media.example.org",
    optional=True,
)
# Service name -> (URL variable, the Guardian's host prefix).
SERVICES: dict[str, tuple[str, str]] = {
    "media-api": ("GRID_MEDIA_API_URL", "api.media."),
    "image-loader": ("GRID_IMAGE_LOADER_URL", "loader.media."),
    "leases": ("GRID_LEASES_URL", "media-leases."),
    "collections": ("GRID_COLLECTIONS_URL", "media-collections."),
    "metadata-editor": ("GRID_METADATA_EDITOR_URL", "media-metadata."),
    "usage": ("GRID_USAGE_URL", "media-usage."),
    "cropper": ("GRID_CROPPER_URL", "cropper.media."),
}
GRID_API_KEY_PARAMETER = Var(
    "GRID_API_KEY_PARAMETER",
    "SSM SecureString parameter holding the Grid API key",
    _text,
    "a parameter name",
    optional=True,
)
GRID_API_KEY_SECRET = Var(
    "GRID_API_KEY_SECRET",
    "Secrets Manager secret holding the Grid API key",
    _text,
    "a secret name or ARN",
    optional=True,
)
GRID_API_KEY = Var(
    "GRID_API_KEY",
    "The Grid API key itself: local runs only, refused inside Lambda",
    str,
    "a key",
    optional=True,
)
GRID_LOADER_TIMEOUT_SECONDS = Var(
    "GRID_LOADER_TIMEOUT_SECONDS",
    "How long one call to image-loader may take in all (connecting, retries, the whole body)",
    _integer(1, 900),
    "1..900",
    "300",
)
GRID_SERVICE_TIMEOUT_SECONDS = Var(
    "GRID_SERVICE_TIMEOUT_SECONDS",
    "How long one call to any other Grid service may take in all (connecting, retries, body)",
    _integer(1, 120),
    "1..120",
    "10",
)
# Body caps. A projected image must fit one Kinesis record (1 MiB, gzipped);
# gzip rarely shrinks the Grid's JSON more than ~10x, so an image-loader answer
# above 16 MiB could hardly ever be published, while 16 MiB of JSON parses into
# about 80 MB of Python objects (~5x, measured on the simulated Grid's images):
# well within image-projection's memory. The data services' answers (leases,
# usages, crops, edits) are merged into that same image, so each is held to a
# quarter of it. The smallest cap allowed is one read chunk (64 KiB).
_BODY_BYTES = _integer(64 * 1024, 256 * 1024 * 1024)
GRID_MAX_LOADER_BODY_BYTES = Var(
    "GRID_MAX_LOADER_BODY_BYTES",
    "Largest image-loader answer read (bytes); a larger one fails the image, unread",
    _BODY_BYTES,
    "65536..268435456",
    str(16 * 1024 * 1024),
)
GRID_MAX_SERVICE_BODY_BYTES = Var(
    "GRID_MAX_SERVICE_BODY_BYTES",
    "Largest answer of any other Grid service read (bytes); a larger one fails the call, unread",
    _BODY_BYTES,
    "65536..268435456",
    str(4 * 1024 * 1024),
)
GRID_CONCURRENCY = Var(
    "GRID_CONCURRENCY",
    "Images worked on at once towards the Grid",
    _integer(1, 256),
    "1..256",
    "32",
)
MAX_MESSAGE_BYTES = Var(
    "MAX_MESSAGE_BYTES",
    "Largest Kinesis record (data + partition key); bigger images go to 9001",
    _integer(1024, KINESIS_RECORD_MAX_BYTES),
    f"1024..{KINESIS_RECORD_MAX_BYTES}",
    str(KINESIS_RECORD_MAX_BYTES),
)
INDEX_START_STATE = Var(
    "INDEX_START_STATE",
    "The state batch-index takes ids from",
    _worker_state(ProgressState.ENQUEUED),
    "a state number other than 1, 3 and 5",
    "0",
)
CHECK_START_STATE = Var(
    "CHECK_START_STATE",
    "The state batch-check takes ids from",
    _worker_state(ProgressState.NOT_STARTED),
    "a state number other than 0, 1 and 5",
    "3",
)
CHECK_MIN_AGE_SECONDS = Var(
    "CHECK_MIN_AGE_SECONDS",
    "Only check images enqueued at least this long ago (thrall's lag)",
    _integer(0, 86400),
    "0..86400",
    "300",
)
MAX_ATTEMPTS = Var(
    "MAX_ATTEMPTS",
    "Failures of one image before it is left at state 8",
    _integer(1, 100),
    "1..100",
    "3",
)
CLAIM_LEASE_SECONDS = Var(
    "CLAIM_LEASE_SECONDS",
    "Age after which a claim is taken to belong to a dead worker; must exceed the Lambda timeout",
    _integer(60, 86400),
    "60..86400",
    "1200",
)
STOP_MARGIN_SECONDS = Var(
    "STOP_MARGIN_SECONDS",
    "Stop starting images when the invocation has less than this left "
    "(> PROJECTION_TIMEOUT_SECONDS + RECORD_BUDGET_SECONDS)",
    _integer(1, 900),
    "1..900",
    "480",
)
THRALL_STREAM_NAME = Var(
    "THRALL_STREAM_NAME",
    "thrall's low-priority Kinesis stream (name or ARN)",
    _text,
    "a stream name or ARN",
)
BACKPRESSURE_STREAMS = Var(
    "BACKPRESSURE_STREAMS",
    "Streams whose iterator age is watched (comma-separated names)",
    _names,
    "stream names",
    optional=True,
)
MAX_ITERATOR_AGE_MS = Var(
    "MAX_ITERATOR_AGE_MS",
    "Take no work while thrall's iterator age is above this",
    _integer(0, 7 * 24 * 3600 * 1000),
    "0..604800000",
    "60000",
)
SCHEDULE_RULE_NAME = Var(
    "SCHEDULE_RULE_NAME",
    "The EventBridge rule this worker switches off when its work is done",
    _text,
    "a rule name",
    optional=True,
)
PROJECTION_FUNCTION_NAME = Var(
    "PROJECTION_FUNCTION_NAME",
    "image-projection Lambda to invoke; unset: project in-process (local runs)",
    _text,
    "a function name or ARN",
    optional=True,
)
BREAKER_FAILURE_SHARE = Var(
    "BREAKER_FAILURE_SHARE",
    "Stop the batch when more than this share of finished images failed for one reason",
    _fraction,
    "0 < x <= 1",
    "0.5",
)
BREAKER_MIN_RESULTS = Var(
    "BREAKER_MIN_RESULTS",
    "Finished images needed before the breaker may trip",
    _integer(1, 5000),
    "1..5000",
    "20",
)
MAX_IN_FLIGHT = Var(
    "MAX_IN_FLIGHT",
    "Most images batch-index has in flight at once (the controller stays under it)",
    _integer(1, 1024),
    "1..1024",
    "32",
)
CHECK_MAX_IN_FLIGHT = Var(
    "CHECK_MAX_IN_FLIGHT",
    "Most images batch-check asks media-api about at once",
    _integer(1, 256),
    "1..256",
    "8",
)
PROJECTION_TIMEOUT_SECONDS = Var(
    "PROJECTION_TIMEOUT_SECONDS",
    "Longest one projection may take (image-projection's timeout)",
    _integer(1, 900),
    "1..900",
    "300",
)
# After its last work returns, a worker still publishes what it holds (one
# PutRecords call) and records each outcome (conditional UpdateItems in
# parallel), each with botocore's standard retries as adapters/aws.py sets them:
# 10 attempts, backoff capped at 20 s, so at most 1 + 2 + 4 + 8 + 16 + 4 x 20 =
# 111 s of waiting; 120 s covers that and the calls themselves.
RECORD_BUDGET_SECONDS = Var(
    "RECORD_BUDGET_SECONDS",
    "Time kept, after the last work can finish, to publish and record what a worker holds",
    _integer(1, 300),
    "1..300",
    "120",
)
CHECK_STOP_MARGIN_SECONDS = Var(
    "CHECK_STOP_MARGIN_SECONDS",
    "batch-check stops starting lookups with less than this left (> service timeout + budget)",
    _integer(1, 900),
    "1..900",
    "150",
)
PACE_REFRESH_SECONDS = Var(
    "PACE_REFRESH_SECONDS",
    "How often a running worker reads the control item (pause, ceilings) and steps the "
    "controller; a worker that can start nothing this long ends its invocation",
    _integer(1, 300),
    "1..300",
    "15",
)
DRY_RUN = Var(
    "DRY_RUN",
    "Claim, project and size-check, publish nothing, put every id back",
    _boolean,
    "true or false",
    "false",
)


# -- loading ------------------------------------------------------------------


def load(cls: type, env: Mapping[str, str] | None = None) -> Any:
    """Build settings dataclass `cls` from `env` (default os.environ), or raise SettingsError."""
    problems: list[str] = []
    value = _load(cls, os.environ if env is None else env, problems)
    if problems:
        raise SettingsError(problems)
    return value


def _load(cls: type, env: Mapping[str, str], problems: list[str]) -> Any:
    before = len(problems)
    values: dict[str, Any] = {}
    groups = [f for f in fields(cls) if "group" in f.metadata]
    for f in fields(cls):
        var: Var | None = f.metadata.get("var")
        if var is None:
            continue
        raw = env.get(var.name, "").strip()
        if not raw:
            if var.default is None:
                if not var.optional:
                    problems.append(f"{var.name} is required: {var.help} ({var.allowed})")
                values[f.name] = None
                continue
            raw = var.default
        try:
            values[f.name] = var.parse(raw)
        except ValueError as error:
            problems.append(
                f"{var.name}={raw!r} is invalid ({error}): {var.help}; allowed: {var.allowed}"
            )
            values[f.name] = None
    for f in groups:
        unless = f.metadata["unless"]
        values[f.name] = (
            None if unless and values.get(unless) else _load(f.metadata["group"], env, problems)
        )
    value = cls(**values)
    cross_checks = getattr(value, "problems", None)
    if cross_checks and len(problems) == before:
        problems.extend(cross_checks(env))
    return value


def watched_streams(backpressure_streams: tuple[str, ...], stream: str) -> tuple[str, ...]:
    """The streams whose iterator age gates batch-index: thrall's (`stream`, a name or
    ARN) unless others are named."""
    return backpressure_streams or (stream_name(stream),)


def variables(cls: type) -> list[Var]:
    """Every variable `cls` reads, nested groups included, each once."""
    out: dict[str, Var] = {}
    for f in fields(cls):
        found = variables(f.metadata["group"]) if "group" in f.metadata else [f.metadata["var"]]
        for var in found:
            out.setdefault(var.name, var)
    return list(out.values())


def describe(cls: type) -> str:
    """A table of every variable `cls` reads: name, meaning, default, allowed values."""
    lines = []
    for var in variables(cls):
        default = (
            var.default
            if var.default is not None
            else ("(unset)" if var.optional else "(required)")
        )
        lines.append(f"{var.name}\n    {var.help}\n    default: {default}; allowed: {var.allowed}")
    return "\n".join(lines)


# -- the settings of each worker ----------------------------------------------


@dataclass(frozen=True)
class GridSettings:
    """Where the Grid is and how to talk to it."""

    domain_root: str | None = _setting(GRID_DOMAIN_ROOT)
    media_api_url: str | None = _setting(
        Var(SERVICES["media-api"][0], "media-api base URL", _url, "http(s) URL", optional=True)
    )
    image_loader_url: str | None = _setting(
        Var(
            SERVICES["image-loader"][0], "image-loader base URL", _url, "http(s) URL", optional=True
        )
    )
    leases_url: str | None = _setting(
        Var(SERVICES["leases"][0], "leases base URL", _url, "http(s) URL", optional=True)
    )
    collections_url: str | None = _setting(
        Var(SERVICES["collections"][0], "collections base URL", _url, "http(s) URL", optional=True)
    )
    metadata_editor_url: str | None = _setting(
        Var(
            SERVICES["metadata-editor"][0],
            "metadata-editor base URL",
            _url,
            "http(s) URL",
            optional=True,
        )
    )
    usage_url: str | None = _setting(
        Var(SERVICES["usage"][0], "usage base URL", _url, "http(s) URL", optional=True)
    )
    cropper_url: str | None = _setting(
        Var(SERVICES["cropper"][0], "cropper base URL", _url, "http(s) URL", optional=True)
    )
    api_key_parameter: str | None = _setting(GRID_API_KEY_PARAMETER)
    api_key_secret: str | None = _setting(GRID_API_KEY_SECRET)
    api_key: str | None = _setting(GRID_API_KEY)
    loader_timeout: int = _setting(GRID_LOADER_TIMEOUT_SECONDS)
    service_timeout: int = _setting(GRID_SERVICE_TIMEOUT_SECONDS)
    max_loader_body: int = _setting(GRID_MAX_LOADER_BODY_BYTES)
    max_service_body: int = _setting(GRID_MAX_SERVICE_BODY_BYTES)
    concurrency: int = _setting(GRID_CONCURRENCY)

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

    stage: str = _setting(STAGE)
    max_message_bytes: int = _setting(MAX_MESSAGE_BYTES)
    grid: GridSettings = _group(GridSettings)


@dataclass(frozen=True)
class BatchIndexSettings:
    """batch-index's settings."""

    stage: str = _setting(STAGE)
    table_name: str = _setting(STATE_TABLE_NAME)
    start_state: ProgressState = _setting(INDEX_START_STATE)
    max_attempts: int = _setting(MAX_ATTEMPTS)
    lease_seconds: int = _setting(CLAIM_LEASE_SECONDS)
    stop_margin_seconds: int = _setting(STOP_MARGIN_SECONDS)
    projection_timeout_seconds: int = _setting(PROJECTION_TIMEOUT_SECONDS)
    record_budget_seconds: int = _setting(RECORD_BUDGET_SECONDS)
    max_message_bytes: int = _setting(MAX_MESSAGE_BYTES)
    stream: str = _setting(THRALL_STREAM_NAME)
    backpressure_streams: tuple[str, ...] | None = _setting(BACKPRESSURE_STREAMS)
    max_iterator_age_ms: int = _setting(MAX_ITERATOR_AGE_MS)
    schedule_rule: str | None = _setting(SCHEDULE_RULE_NAME)
    projection_function: str | None = _setting(PROJECTION_FUNCTION_NAME)
    breaker_share: float = _setting(BREAKER_FAILURE_SHARE)
    breaker_min_results: int = _setting(BREAKER_MIN_RESULTS)
    max_in_flight: int = _setting(MAX_IN_FLIGHT)
    refresh_seconds: int = _setting(PACE_REFRESH_SECONDS)
    dry_run: bool = _setting(DRY_RUN)
    # Projecting in-process needs the Grid itself; invoking image-projection does not.
    grid: GridSettings | None = _group(GridSettings, unless="projection_function")

    @property
    def watched_streams(self) -> tuple[str, ...]:
        """The streams whose iterator age gates work: thrall's stream unless set otherwise."""
        return watched_streams(self.backpressure_streams, self.stream)

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

    stage: str = _setting(STAGE)
    table_name: str = _setting(STATE_TABLE_NAME)
    start_state: ProgressState = _setting(CHECK_START_STATE)
    min_age_seconds: int = _setting(CHECK_MIN_AGE_SECONDS)
    max_attempts: int = _setting(MAX_ATTEMPTS)
    lease_seconds: int = _setting(CLAIM_LEASE_SECONDS)
    stop_margin_seconds: int = _setting(CHECK_STOP_MARGIN_SECONDS)
    record_budget_seconds: int = _setting(RECORD_BUDGET_SECONDS)
    breaker_share: float = _setting(BREAKER_FAILURE_SHARE)
    breaker_min_results: int = _setting(BREAKER_MIN_RESULTS)
    max_in_flight: int = _setting(CHECK_MAX_IN_FLIGHT)
    refresh_seconds: int = _setting(PACE_REFRESH_SECONDS)
    schedule_rule: str | None = _setting(SCHEDULE_RULE_NAME)
    grid: GridSettings = _group(GridSettings)

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
