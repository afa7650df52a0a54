"""Loading a worker's settings from the environment, and describing what it reads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import TypeAdapter, ValidationError
from pydantic.dataclasses import is_pydantic_dataclass

from grid_reingest.settings.env_vars import ALL_VARS, VARS
from grid_reingest.settings.var import SettingsError, Var, problems_of


def load[T](cls: type[T], env: Mapping[str, str] | None = None) -> T:
    """Build settings `cls` from `env` (default os.environ), or raise SettingsError listing
    every missing or invalid variable."""
    env = os.environ if env is None else env
    problems: list[str] = []
    values = {name: raw.strip() for name, raw in env.items() if raw.strip()}
    value = _load(cls, values, env, problems)
    if problems:
        raise SettingsError(problems)
    return value  # type: ignore[no-any-return]


def _load(
    cls: type[Any], values: dict[str, str], env: Mapping[str, str], problems: list[str]
) -> Any:
    before = len(problems)
    data: dict[str, Any] = dict(values)
    for name, (group, unless) in _groups(cls).items():
        data[name] = None if unless and values.get(unless) else _load(group, values, env, problems)
    fields = {f.alias or name: f for name, f in cls.__pydantic_fields__.items()}
    try:
        value = TypeAdapter(cls).validate_python(data)
    except ValidationError as error:
        # A group that failed has said why already.
        errors = [
            e for e in error.errors() if e["loc"][0] not in _groups(cls) or len(problems) == before
        ]
        problems.extend(problems_of(errors, lambda loc: (str(loc[0]), fields[str(loc[0])])))
        return None
    if len(problems) == before and hasattr(value, "problems"):
        problems.extend(value.problems(env))
    return value


def _groups(cls: type[Any]) -> dict[str, tuple[type[Any], str | None]]:
    """`cls`'s nested settings: field name -> (its class, the variable that makes it moot)."""
    out = {}
    for name, f in cls.__pydantic_fields__.items():
        nested = [t for t in (f.annotation, *get_args(f.annotation)) if is_pydantic_dataclass(t)]
        if nested:
            extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
            out[name] = (nested[0], extra.get("unless"))
    return out


def _var_of(f: Any) -> Var:
    """The variable a field reads: by name, and by meaning where one name is read two ways."""
    same = [v for v in ALL_VARS if v.name == f.alias]
    return next((v for v in same if v.help == f.description), VARS[str(f.alias)])


def variables(cls: type[Any]) -> list[Var]:
    """Every variable `cls` reads, nested groups included, each once."""
    out: dict[str, Var] = {}
    groups = _groups(cls)
    for name, f in cls.__pydantic_fields__.items():
        found = variables(groups[name][0]) if name in groups else [_var_of(f)]
        for var in found:
            out.setdefault(var.name, var)
    return list(out.values())


def describe(cls: type[Any]) -> str:
    """A table of every variable `cls` reads: name, meaning, default, allowed values."""
    lines = []
    for var in variables(cls):
        default = var.default or ("(unset)" if var.optional else "(required)")
        lines.append(f"{var.name}\n    {var.help}\n    default: {default}; allowed: {var.allowed}")
    return "\n".join(lines)
