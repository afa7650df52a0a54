"""A pass simulator scenario: the schema, its defaults, and a loader that refuses bad files.

A scenario file is JSON (benchmarks/scenarios/*.json); every key has a
default, so a file gives only what it changes. docs/throughput.md documents
each key ("Scenario files"). `load_scenario` refuses an unknown key, a value
of the wrong type or out of range, naming the file and the key's path
(`grid.changes[0].slots`), so that a typo never runs a different scenario
than the one meant.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints


class ScenarioError(ValueError):
    """A scenario file that cannot be run as written; the message names the file and key."""


def _field(default: Any, lo: float | None = None, hi: float | None = None, doc: str = "") -> Any:
    """A schema field with its range (inclusive) and meaning."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "doc": doc})


@dataclass(frozen=True)
class SlotChange:
    """From `at_minute` on, image-loader has `slots` slots."""

    at_minute: float = _field(0.0, 0, 100_000, "when, in minutes from the start")
    slots: int = _field(1, 0, 10_000, "image-loader's slots from then on")


@dataclass(frozen=True)
class Background:
    """From `from_minute` to `to_minute`, the Grid's other users hold `slots_used` slots."""

    from_minute: float = _field(0.0, 0, 100_000, "start, minutes")
    to_minute: float = _field(0.0, 0, 100_000, "end, minutes")
    slots_used: int = _field(0, 0, 10_000, "slots taken by other users")


@dataclass(frozen=True)
class ErrorBurst:
    """From `from_minute` to `to_minute`, `share` of projections fail with `status`."""

    from_minute: float = _field(0.0, 0, 100_000, "start, minutes")
    to_minute: float = _field(0.0, 0, 100_000, "end, minutes")
    status: int = _field(500, 400, 599, "the HTTP status answered")
    share: float = _field(0.5, 0, 1, "the share of calls that fail")


@dataclass(frozen=True)
class GridSpec:
    """image-loader as a pool of slots with a waiting room; the data services after it."""

    slots: int = _field(8, 1, 10_000, "projections in service at once")
    service_seconds: float = _field(2.0, 0.01, 600, "mean projection time at no load")
    service_sigma: float = _field(0.8, 0, 3, "log-normal spread of projection times")
    queue: int = _field(64, 0, 100_000, "projections that may wait for a slot; beyond: 503")
    changes: list[SlotChange] = field(
        default_factory=list, metadata={"doc": "slot counts from a minute on"}
    )
    background: list[Background] = field(
        default_factory=list, metadata={"doc": "slots held by the Grid's other users"}
    )
    errors: list[ErrorBurst] = field(
        default_factory=list, metadata={"doc": "failures with no latency warning first"}
    )


@dataclass(frozen=True)
class RateChange:
    """From `at_minute` on, thrall takes `per_minute` records a minute (0: paused)."""

    at_minute: float = _field(0.0, 0, 100_000, "when, in minutes from the start")
    per_minute: float = _field(0.0, 0, 1_000_000, "records a minute from then on")


@dataclass(frozen=True)
class ThrallSpec:
    """thrall consuming its low-priority stream."""

    per_minute: float = _field(900.0, 1, 1_000_000, "records a minute thrall takes")
    changes: list[RateChange] = field(
        default_factory=list, metadata={"doc": "rates from a minute on"}
    )
    shards: int = _field(1, 1, 64, "the stream's shards")
    other_records_per_minute: float = _field(0.0, 0, 1_000_000, "other producers' records")
    checkpoint_seconds: float = _field(60.0, 1, 3600, "thrall's checkpoint period")


@dataclass(frozen=True)
class KinesisSpec:
    """The stream's records and its per-shard write limits."""

    record_kb_mean: float = _field(30.0, 0.1, 1024, "mean record size, KB")
    record_kb_sigma: float = _field(1.0, 0, 3, "log-normal spread of record sizes")
    shard_mb_per_second: float = _field(1.0, 0.01, 100, "bytes a shard takes a second, MB")
    shard_records_per_second: float = _field(1000.0, 1, 100_000, "records a shard takes a second")


@dataclass(frozen=True)
class MediaApiSpec:
    """media-api, as batch-check calls it."""

    slots: int = _field(16, 1, 10_000, "lookups in service at once")
    service_seconds: float = _field(0.1, 0.001, 60, "mean lookup time")


@dataclass(frozen=True)
class Scenario:
    """One simulated pass: the Grid, thrall, the stream and media-api, and the images."""

    name: str = _field("scenario", doc="the scenario's name in the results")
    images: int = _field(20_000, 1, 10_000_000, "images in the pass")
    seed: int = _field(1, 0, 2**31, "the first seed (--seeds N runs seed, seed + 1, ...)")
    minutes_max: float = _field(900.0, 1, 100_000, "the simulation stops here, finished or not")
    grid: GridSpec = field(default_factory=GridSpec)
    thrall: ThrallSpec = field(default_factory=ThrallSpec)
    kinesis: KinesisSpec = field(default_factory=KinesisSpec)
    media_api: MediaApiSpec = field(default_factory=MediaApiSpec)

    @property
    def grid_per_minute(self) -> float:
        """image-loader's capacity at its starting slots, every slot busy."""
        return self.grid.slots * 60 / self.grid.service_seconds

    @property
    def thrall_per_minute(self) -> float:
        """What thrall can take of ours: its rate less the other producers'."""
        return max(0.0, self.thrall.per_minute - self.thrall.other_records_per_minute)

    @property
    def kinesis_per_minute(self) -> float:
        """What the shards can take of ours a minute (bytes or records, the lower)."""
        k = self.kinesis
        by_bytes = k.shard_mb_per_second * 1024 / k.record_kb_mean
        per_shard = min(by_bytes, k.shard_records_per_second) * 60
        return max(0.0, per_shard * self.thrall.shards - self.thrall.other_records_per_minute)

    @property
    def capacity_per_minute(self) -> float:
        """The pass's nominal ceiling: the lowest of the Grid, thrall and the stream."""
        return min(self.grid_per_minute, self.thrall_per_minute, self.kinesis_per_minute)

    @property
    def disturbances(self) -> list[float]:
        """Seconds from the start at which capacity changes or an error burst ends, in order
        (recovery is measured from each): slot changes, background load starting or
        ending, thrall's rate changing, a burst's end."""
        minutes = {c.at_minute for c in self.grid.changes}
        minutes |= {b.from_minute for b in self.grid.background}
        minutes |= {b.to_minute for b in self.grid.background}
        minutes |= {e.to_minute for e in self.grid.errors}
        minutes |= {c.at_minute for c in self.thrall.changes}
        return sorted(m * 60 for m in minutes)

    def capacity_at(self, seconds: float) -> float:
        """The capacity in force at `seconds` (images a minute): as `capacity_per_minute`,
        with the slots, background load and thrall's rate of that moment."""
        minute = seconds / 60
        slots = self.grid.slots
        for change in sorted(self.grid.changes, key=lambda c: c.at_minute):
            if change.at_minute <= minute:
                slots = change.slots
        slots -= sum(
            b.slots_used for b in self.grid.background if b.from_minute <= minute < b.to_minute
        )
        rate = self.thrall.per_minute
        for thrall_change in sorted(self.thrall.changes, key=lambda c: c.at_minute):
            if thrall_change.at_minute <= minute:
                rate = thrall_change.per_minute
        grid = max(0, slots) * 60 / self.grid.service_seconds
        thrall = max(0.0, rate - self.thrall.other_records_per_minute)
        return min(grid, thrall, self.kinesis_per_minute)

    @property
    def capacity_changes(self) -> bool:
        """Whether the Grid's or thrall's capacity changes during the pass."""
        return bool(self.grid.changes or self.grid.background or self.thrall.changes)


def load_scenario(path: str | Path) -> Scenario:
    """The scenario in `path`, or ScenarioError naming the file and what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise ScenarioError(f"{path}: cannot be read: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise ScenarioError(
            f"{path}: not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    try:
        return parse_scenario(data)
    except ScenarioError as error:
        raise ScenarioError(f"{path}: {error}") from None


def parse_scenario(data: Any) -> Scenario:
    """A Scenario from parsed JSON, or ScenarioError naming the key."""
    scenario = _build(Scenario, data, "")
    _check_windows(scenario)
    return scenario


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ScenarioError(f"{where or 'the file'} must be an object, not {_kind(data)}")
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ScenarioError(
            f"unknown key {_path(where, unknown[0])!r}; known here: {', '.join(known)}"
        )
    values = {}
    for name, value in data.items():
        values[name] = _value(hints[name], value, _path(where, name), known[name].metadata)
    return cls(**values)


def _value(kind: Any, value: Any, where: str, meta: Any) -> Any:
    if get_origin(kind) is list:
        (item,) = get_args(kind)
        if not isinstance(value, list):
            raise ScenarioError(f"{where} must be a list, not {_kind(value)}")
        return [_build(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if is_dataclass(kind):
        return _build(kind, value, where)
    if kind is str:
        if not isinstance(value, str) or not value:
            raise ScenarioError(f"{where} must be a non-empty string, not {value!r}")
        return value
    number_ok = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int and not (number_ok and float(value).is_integer()):
        raise ScenarioError(f"{where} must be a whole number, not {value!r}")
    if kind is float and not (number_ok and math.isfinite(value)):
        raise ScenarioError(f"{where} must be a number, not {value!r}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ScenarioError(f"{where}={value!r} is out of range: {lo:g} to {hi:g}")
    return kind(value)


def _check_windows(scenario: Scenario) -> None:
    windows = [("grid.background", w) for w in scenario.grid.background]
    windows += [("grid.errors", w) for w in scenario.grid.errors]
    for i, (name, window) in enumerate(windows):
        if window.to_minute <= window.from_minute:
            index = i if name == "grid.background" else i - len(scenario.grid.background)
            raise ScenarioError(
                f"{name}[{index}].to_minute={window.to_minute:g} must be after "
                f"from_minute={window.from_minute:g}"
            )


def _path(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false"}.get(
        type(value), f"{value!r}"
    )


def schema_lines(cls: type = Scenario, where: str = "") -> list[tuple[str, str, str, str]]:
    """(key, default, range, meaning) of every key, for docs/throughput.md's table."""
    rows = []
    hints = get_type_hints(cls)
    for f in fields(cls):
        key = _path(where, f.name)
        kind = hints[f.name]
        meta = f.metadata
        if is_dataclass(kind):
            rows += schema_lines(kind, key)
            continue
        if get_origin(kind) is list:
            (item,) = get_args(kind)
            rows.append((key, "[]", "a list", meta.get("doc", "")))
            rows += schema_lines(item, f"{key}[]")
            continue
        lo, hi = meta.get("lo"), meta.get("hi")
        span = f"{lo:g}..{hi:g}" if lo is not None else "text"
        rows.append((key, json.dumps(f.default), span, meta.get("doc", "")))
    return rows
