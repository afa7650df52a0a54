"""One environment variable as a worker reads it, and the parsers that validate its value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from grid_reingest.domain.states import ProgressState


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


def integer(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not lo <= value <= hi:
            raise ValueError(f"{value} is out of range")
        return value

    return parse


def fraction(raw: str) -> float:
    value = float(raw)
    if not 0 < value <= 1:
        raise ValueError(f"{value} is out of range")
    return value


def boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"{raw!r} is not a boolean")


def text(raw: str) -> str:
    if any(c.isspace() for c in raw):
        raise ValueError("contains whitespace")
    return raw


def url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("is not an http(s) URL")
    return raw.rstrip("/")


def names_list(raw: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    if not names:
        raise ValueError("names no stream")
    return names


def worker_state(*forbidden: ProgressState) -> Callable[[str], ProgressState]:
    def parse(raw: str) -> ProgressState:
        state = ProgressState.parse(raw)
        if state in forbidden or state.is_claim:
            raise ValueError(f"state {int(state)} cannot be a start state here")
        return state

    return parse


def setting(var: Var) -> Any:
    """A settings dataclass field read from `var`."""
    return field(metadata={"var": var})


def group(cls: type, unless: str | None = None) -> Any:
    """A nested group of settings; with `unless`, not needed (None) when that field is set."""
    return field(default=None, metadata={"group": cls, "unless": unless})
