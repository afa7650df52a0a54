"""The folders are the layers: what each may import."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lambdas" / "grid_reingest"
# Libraries that talk to the outside world: adapters and handlers only.
IO_LIBRARIES = {"boto3", "botocore", "requests", "urllib3", "aws_lambda_powertools"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py")) if folder else sorted(PACKAGE.glob("*.py"))


@pytest.mark.parametrize("path", modules("domain"), ids=lambda p: p.name)
def test_domain_imports_no_io_library_and_no_outer_layer(path):
    # Given a domain module, When its imports are read
    found = imports(path)
    # Then none is an I/O library, an adapter, a flow or a handler
    roots = {name.split(".")[0] for name in found}
    assert not roots & IO_LIBRARIES, f"{path.name} imports {roots & IO_LIBRARIES}"
    outer = [
        n
        for n in found
        if n.startswith("grid_reingest.") and not n.startswith(("grid_reingest.domain",))
    ]
    assert not outer, f"{path.name} imports {outer}"


@pytest.mark.parametrize("path", [*modules("flows"), PACKAGE / "ports.py"], ids=lambda p: p.name)
def test_flows_and_ports_reach_the_world_only_through_ports(path):
    found = imports(path)
    roots = {name.split(".")[0] for name in found}
    assert not roots & IO_LIBRARIES, f"{path.name} imports {roots & IO_LIBRARIES}"
    assert not [
        n for n in found if n.startswith(("grid_reingest.adapters", "grid_reingest.handlers"))
    ]


def test_only_adapters_and_handlers_import_io_libraries():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        layer = path.relative_to(PACKAGE).parts[0]
        if layer in ("adapters", "handlers"):
            continue
        roots = {name.split(".")[0] for name in imports(path)}
        if roots & IO_LIBRARIES:
            offenders.append(f"{path.relative_to(PACKAGE)}: {sorted(roots & IO_LIBRARIES)}")
    assert not offenders


def test_the_runtime_imports_nothing_from_outside_the_package():
    for path in PACKAGE.rglob("*.py"):
        roots = {name.split(".")[0] for name in imports(path)}
        assert not roots & {"scripts", "infra", "devtools", "tests", "benchmarks"}, path
