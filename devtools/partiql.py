"""PartiQL `INSERT` as DynamoDB reads it, for the fakes that answer BatchExecuteStatement.

moto's server cannot run a parameterised `INSERT` (its parser fails on `?`)
and, when it can, overwrites an existing item; DynamoDB refuses that statement
alone with `DuplicateItem`. The in-memory store, the latency model and the
patched moto server (devtools/moto_partiql.py) read statements here, so that
all three accept the same statements and answer them the same way.

Only the statement shape the state table sends is modelled:

    INSERT INTO "table" VALUE {'attr': ?, 'attr': 0, 'attr': 'text', ...}

each value a `?` parameter, a number or a string ('' for a quote in it).

Anything else is refused with a PartiqlError (DynamoDB's ValidationError),
never guessed at.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

# DynamoDB's table names: 3 to 255 of these characters.
_TABLE = r'"(?P<quoted>[A-Za-z0-9_.\-]{3,255})"|(?P<bare>[A-Za-z_][A-Za-z0-9_]{2,254})'
_HEAD = re.compile(
    rf"\s*INSERT\s+INTO\s+(?:{_TABLE})\s+VALUE\s*\{{(?P<body>.*)\}}\s*;?\s*\Z", re.I | re.S
)
_STRING = r"'(?:[^']|'')*'"
_PAIR = re.compile(
    rf"\s*'(?P<name>(?:[^']|'')+)'\s*:\s*"
    rf"(?:(?P<parameter>\?)|(?P<number>-?\d+(?:\.\d+)?)|(?P<string>{_STRING}))\s*"
)
_PAIRS = re.compile(rf"(?:{_STRING}|[^,'])+")

# The key of the tables these fakes hold: the state table's.
KEY = "id"


class PartiqlError(Exception):
    """A statement DynamoDB would refuse (ValidationError), or one these fakes do not model."""


@dataclass(frozen=True)
class InsertStatement:
    """One parsed `INSERT`: the table, the attribute each `?` stands for (in order), and
    the attributes written as literals."""

    table: str
    names: tuple[str, ...]
    literals: tuple[tuple[str, dict[str, str]], ...] = ()

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def parse(statement: str) -> InsertStatement:
        """The statement read, or PartiqlError saying what is wrong with it."""
        head = _HEAD.match(statement)
        if head is None:
            raise PartiqlError(f"not an INSERT INTO <table> VALUE {{...}} statement: {statement!r}")
        names: list[str] = []
        literals: list[tuple[str, dict[str, str]]] = []
        for pair in _PAIRS.findall(head["body"]):
            match = _PAIR.fullmatch(pair)
            if match is None:
                raise PartiqlError(f"only 'name': ?, number or 'string' is modelled, not {pair!r}")
            name = match["name"].replace("''", "'")
            if match["parameter"]:
                names.append(name)
            elif match["number"]:
                literals.append((name, {"N": match["number"]}))
            else:
                literals.append((name, {"S": match["string"][1:-1].replace("''", "'")}))
        every = names + [name for name, _ in literals]
        if len(set(every)) != len(every):
            raise PartiqlError("an attribute is named twice in the item")
        if KEY not in names:
            raise PartiqlError(f"the key {KEY} must be a parameter (Missing the key {KEY})")
        return InsertStatement(head["quoted"] or head["bare"], tuple(names), tuple(literals))

    def item(self, parameters: list[dict[str, Any]]) -> dict[str, Any]:
        """The item the statement inserts, from its parameters (AttributeValues)."""
        if len(parameters) != len(self.names):
            raise PartiqlError(
                f"Number of parameters in request and statement don't match: "
                f"{len(parameters)} for {len(self.names)}"
            )
        item = dict(zip(self.names, parameters, strict=True))
        item.update((name, dict(value)) for name, value in self.literals)
        if set(item[KEY]) != {"S"}:
            raise PartiqlError(f"the key {KEY} must be a string")
        return item


def statement_error(code: str, message: str) -> dict[str, Any]:
    """One entry of BatchExecuteStatement's Responses for a refused statement."""
    return {"Error": {"Code": code, "Message": message}}
