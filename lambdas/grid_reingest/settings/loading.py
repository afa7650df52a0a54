"""Loading a settings dataclass from the environment, and describing what it reads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from grid_reingest.settings.var import SettingsError, Var


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
