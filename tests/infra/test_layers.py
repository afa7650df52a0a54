"""The CDK app depends on the runtime package's names and settings only, never its layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

INFRA = Path(__file__).resolve().parents[2] / "infra"
# What infra may take from the runtime package: names and variables, nothing that
# does I/O (adapters), runs a pass (flows, handlers) or decides (domain), except the one
# progress-state type that workers, scripts, infra and tests share.
ALLOWED = {"grid_reingest.names", "grid_reingest.settings", "grid_reingest.domain.states"}


def runtime_imports(source: str) -> set[str]:
    """Every `grid_reingest` module a module's source imports, by its full name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "grid_reingest")
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module == "grid_reingest":
                found.update(f"grid_reingest.{a.name}" for a in node.names)
            elif node.module.startswith("grid_reingest."):
                found.add(node.module)
    return found


@pytest.mark.parametrize(
    "path", sorted(INFRA.rglob("*.py")), ids=lambda p: str(p.relative_to(INFRA))
)
def test_layers_infra_imports_only_names_and_settings(path):
    # Given one module of the CDK app, When its runtime imports are read
    found = runtime_imports(path.read_text())

    # Then none reaches adapters, flows, handlers or the domain
    assert found <= ALLOWED, f"{path.relative_to(INFRA.parent)} imports {sorted(found - ALLOWED)}"


@pytest.mark.parametrize(
    "source",
    [
        "from grid_reingest.adapters.dynamodb import schema",
        "from grid_reingest.domain.claims import Claim",
        "import grid_reingest.flows.batch_index",
        "from grid_reingest import handlers",
    ],
)
def test_layers_walk_sees_every_form_of_import(source):
    assert not runtime_imports(source) <= ALLOWED
