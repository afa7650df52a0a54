"""One environment variable, declared once: name, type, range, default and meaning.

A `Var` gives the pydantic field a worker's settings read it with (`field`),
the same checks without the name and default for the CDK context (`checks`),
its value parsed from text (`parse`) and the words that describe it. Problems
found by pydantic come back as sentences naming the variable (`problems_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any

from annotated_types import Ge, Gt, Le
from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter, ValidationError
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticUndefined

from grid_reingest.domain.states import ProgressState


class SettingsError(ValueError):
    """The environment does not configure a worker; the message lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n  - " + "\n  - ".join(problems))
        self.problems = problems


@dataclass(frozen=True, eq=False)
class Var:
    """One environment variable: `type` may carry validators; constraints are pydantic's
    (ge, le, gt); `allowed` describes a value the constraints cannot say in words."""

    name: str
    type: Any
    help: str
    default_value: Any = PydanticUndefined  # PydanticUndefined: required
    allowed_text: str | None = None
    constraints: tuple[tuple[str, Any], ...] = ()

    @cached_property
    def checks(self) -> FieldInfo:
        """The type and range alone: what a value of this variable must be, anywhere."""
        extra: JsonDict | None = {"allowed": self.allowed_text} if self.allowed_text else None
        checked: Any = Annotated[
            self.type, Field(json_schema_extra=extra, **dict(self.constraints))
        ]
        return FieldInfo.from_annotation(checked)

    @cached_property
    def field(self) -> FieldInfo:
        """The field a worker's settings read this variable into."""
        own = Field(self.default_value, alias=self.name, description=self.help)
        return FieldInfo.merge_field_infos(self.checks, own)

    @property
    def optional(self) -> bool:
        """May be absent (the value is then None)."""
        return self.default_value is None

    @property
    def default(self) -> str | None:
        """The default as the environment would say it (None: required or optional)."""
        value = self.default_value
        if value is None or value is PydanticUndefined:
            return None
        if isinstance(value, bool):
            return str(value).lower()
        return str(int(value)) if isinstance(value, ProgressState) else str(value)

    @property
    def allowed(self) -> str:
        """The values allowed, in words."""
        return allowed(self.checks)

    @property
    def most(self) -> int:
        """The largest value allowed (a variable with an upper bound)."""
        bound: Any = next(m.le for m in self.checks.metadata if isinstance(m, Le))
        return int(bound)

    @cached_property
    def _adapter(self) -> TypeAdapter[Any]:
        checked: Any = Annotated[self.type, self.checks]
        return TypeAdapter(checked)

    def parse(self, raw: str) -> Any:
        """The value of `raw` (text, as in the environment), or ValueError saying why not."""
        try:
            return self._adapter.validate_python(raw.strip())
        except ValidationError as error:
            raise ValueError("; ".join(_reason(e) for e in error.errors())) from None


def var(
    name: str,
    type_: Any,
    help_: str,
    default: Any = PydanticUndefined,
    *,
    allowed: str | None = None,
    **constraints: Any,
) -> Var:
    """Declare a variable: `var("MAX_ATTEMPTS", int, "Failures ...", 3, ge=1, le=100)`."""
    return Var(name, type_, help_, default, allowed, tuple(constraints.items()))


def allowed(field: FieldInfo) -> str:
    """A field's allowed values in words: its own text, else its range."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and extra.get("allowed"):
        return str(extra["allowed"])
    bounds = {type(m): m for m in field.metadata}
    lo, hi = bounds.get(Ge), bounds.get(Le)
    if isinstance(lo, Ge) and isinstance(hi, Le):
        return f"{lo.ge}..{hi.le}"
    low = bounds.get(Gt)
    if isinstance(low, Gt) and isinstance(hi, Le):
        return f"{low.gt} < x <= {hi.le}"
    return "true or false" if field.annotation is bool else "any value"


def _reason(error: Any) -> str:
    cause = error.get("ctx", {}).get("error")
    return str(cause) if cause is not None else str(error["msg"]).lower()


def problems_of(
    errors: Iterable[ErrorDetails],
    field_at: Callable[[tuple[Any, ...]], tuple[str, FieldInfo | None]],
) -> list[str]:
    """One sentence per problem pydantic found: `field_at(loc)` names the place and the field
    read there (None: no field, e.g. an unknown key under the place)."""
    found: list[str] = []
    for e in errors:
        cause = e.get("ctx", {}).get("error")
        if isinstance(cause, SettingsError):
            found.extend(cause.problems)
            continue
        key, field = field_at(tuple(e["loc"]))
        if field is None:
            found.append(f"{key}: unknown {[e['loc'][-1]]!r}")
        elif e["type"] == "missing":
            found.append(f"{key} is required: {field.description} ({allowed(field)})")
        else:
            found.append(
                f"{key}={e['input']!r} is invalid ({_reason(e)}): {field.description}; "
                f"allowed: {allowed(field)}"
            )
    return found


# -- the types that need more than a range ---------------------------------------------------


def _no_whitespace(value: str | None) -> str | None:
    if value is not None and any(c.isspace() for c in value):
        raise ValueError("contains whitespace")
    return value


def _http_url(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith(("http://", "https://")):
        raise ValueError("is not an http(s) URL")
    return value.rstrip("/")


def _names(value: Any) -> Any:
    if isinstance(value, str):
        value = tuple(n.strip() for n in value.split(",") if n.strip())
        if not value:
            raise ValueError("names no stream")
    return value


def _boolean(value: Any) -> Any:
    # The words an operator writes; pydantic alone would also take on/off, y/n.
    words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if isinstance(value, str):
        if value.lower() not in words:
            raise ValueError(f"{value!r} is not a boolean")
        return words[value.lower()]
    return value


Text = Annotated[str, AfterValidator(_no_whitespace)]
Url = Annotated[str, AfterValidator(_http_url)]
Names = Annotated[tuple[str, ...], BeforeValidator(_names)]
Flag = Annotated[bool, BeforeValidator(_boolean)]


def worker_state(*forbidden: ProgressState) -> Any:
    """A progress state a worker may take ids from: never a claim, nor one of `forbidden`."""

    def check(value: Any) -> ProgressState:
        state = ProgressState.parse(str(value)) if not isinstance(value, ProgressState) else value
        if state in forbidden or state.is_claim:
            raise ValueError(f"state {int(state)} cannot be a start state here")
        return state

    return Annotated[ProgressState, BeforeValidator(check)]


def matching(check: Callable[[str], Any]) -> Any:
    """Text that `check` accepts (it raises ValueError otherwise)."""
    return Annotated[
        str, AfterValidator(_no_whitespace), AfterValidator(lambda v: v and check(v) and v)
    ]
