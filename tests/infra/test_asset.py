"""The Lambda asset: what is in it, that it is the runtime lock built for Lambda,
and that the handlers import from it alone.

Each import runs in a fresh interpreter (`-I -S -B`: no site-packages, no user
paths, no .pyc writes, as on Lambda's read-only /var/task) whose path holds
only the asset and what Lambda's Python runtime provides (boto3, botocore and
their own dependencies, linked from this environment).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import sys
from pathlib import Path, PurePosixPath

import pytest

from devtools import lambda_runtime
from infra import asset as asset_module
from infra import constants as c

pytestmark = pytest.mark.slow

# pydantic-core's compiled module is about 5 MiB of it.
MAX_ASSET_BYTES = 20 * 1024 * 1024
HANDLERS = {service: handler.rsplit(".", 1)[0] for service, handler in c.HANDLERS.items()}
# The runtime's interpreter reads only .pyc files named for its version.
PYC_TAG = "cpython-{}{}".format(*asset_module.TARGET_PYTHON)


@pytest.fixture(scope="session")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory standing in for Lambda's runtime packages (links into this venv)."""
    return lambda_runtime.runtime_dir(tmp_path_factory.mktemp("lambda-runtime"))


def import_in_isolation(
    asset: Path, runtime: Path, modules: list[str], env: dict[str, str] | None = None
) -> dict:
    """Import `modules` in a fresh interpreter that sees only the asset and the runtime."""
    body = f"""
import importlib, json
for name in {modules!r}:
    importlib.import_module(name)
origins = {{
    name: getattr(module, "__file__", None) or ""
    for name, module in sys.modules.items()
}}
print(json.dumps(origins))
"""
    result = lambda_runtime.run_isolated(asset, runtime, body, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_only_from(origins: dict[str, str], *allowed: Path) -> None:
    """Every imported module comes from an allowed directory or the standard library."""
    stdlib = Path(sys.base_prefix).resolve()
    strays = {
        name: path
        for name, path in origins.items()
        if path
        and not any(path.startswith(str(a)) for a in allowed)
        and not Path(path).resolve().is_relative_to(stdlib)
    }
    assert strays == {}


def test_asset_holds_the_package_and_its_dependencies_only(assembly):
    root = assembly.asset_dir()
    top = {p.name for p in root.iterdir()}

    assert {"grid_reingest", "requests", "aws_lambda_powertools", "urllib3"} <= top
    assert not {"boto3", "botocore", "s3transfer", "tests", "infra", "scripts"} & top
    # The one compiled module shipped is pydantic's core, built for the functions' platform.
    (compiled,) = root.rglob("*.so")
    assert compiled.parent.name == "pydantic_core" and "aarch64" in compiled.name
    assert not list(root.rglob("tests"))


def test_asset_is_precompiled_for_the_runtime(assembly):
    root = assembly.asset_dir()
    sources = list(root.rglob("*.py"))
    compiled = {p.name.split(".")[0] + p.parent.parent.name for p in root.rglob(f"*.{PYC_TAG}.pyc")}

    assert sources
    assert {p.stem + p.parent.name for p in sources} == compiled
    # Unchecked hash-based .pyc (PEP 552 flags = 0b01): valid whatever the zip does to mtimes.
    sample = next(root.rglob(f"names.{PYC_TAG}.pyc")).read_bytes()
    assert int.from_bytes(sample[4:8], "little") == 0b01


def test_asset_size(assembly):
    size = sum(p.stat().st_size for p in assembly.asset_dir().rglob("*") if p.is_file())

    assert size <= MAX_ASSET_BYTES


def test_asset_bundles_no_runtime_provided_distribution():
    names = {d.split("==")[0] for d in asset_module.plan().distributions}

    assert {"requests", "aws-lambda-powertools", "charset-normalizer"} <= names
    assert not {"boto3", "botocore", "s3transfer"} & names


def _lock_pins(lock: Path) -> dict[str, str]:
    """`name==version` lines of a lock file, read apart from the asset's own parser."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?:\s|$)", line)
        if match:
            pins[match[1].lower().replace("_", "-").replace(".", "-")] = match[2]
    return pins


def test_asset_packages_are_exactly_the_runtime_lock(assembly):
    # Given the asset as synthesized, and the runtime lock
    root = assembly.asset_dir()
    shipped = {}
    for metadata in root.glob("*.dist-info/METADATA"):
        headers = dict(
            line.split(": ", 1) for line in metadata.read_text().splitlines() if ": " in line
        )
        shipped[headers["Name"].lower().replace("_", "-").replace(".", "-")] = headers["Version"]

    # Then it ships every locked package at its locked version, and nothing else
    assert shipped == _lock_pins(asset_module.RUNTIME_LOCK)


def test_asset_is_built_for_the_functions_architecture(assembly):
    functions = [
        r["Properties"]
        for r in assembly.raw("TEST")["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
    ]

    assert functions
    assert {tuple(f["Architectures"]) for f in functions} == {(asset_module.ARCHITECTURE.name,)}
    assert {f["Runtime"] for f in functions} == {asset_module.RUNTIME.name}
    assert all("aarch64" in p for p in asset_module.TARGET_PLATFORMS)


def test_asset_installs_the_locked_packages_once(tmp_path, monkeypatch):
    # Given the locked packages installed for Lambda in a cache
    lock = tmp_path / "runtime.txt"
    lock.write_text(asset_module.RUNTIME_LOCK.read_text())
    first = asset_module.locked_site(lock, tmp_path / "cache")

    # When they are asked for again, with pip out of reach
    def no_pip(*_args, **_kwargs):
        raise AssertionError("pip ran again")

    monkeypatch.setattr(asset_module.subprocess, "run", no_pip)
    again = asset_module.locked_site(lock, tmp_path / "cache")

    # Then the cached copy serves, and a changed lock would get a directory of its own
    assert again == first
    lock.write_text(lock.read_text() + "\n")
    with pytest.raises(AssertionError, match="pip ran again"):
        asset_module.locked_site(lock, tmp_path / "cache")


def test_asset_refuses_a_lock_with_a_runtime_provided_package(tmp_path):
    lock = tmp_path / "runtime.txt"
    lock.write_text("botocore==1.0 \\\n    --hash=sha256:00\nrequests==2.0\n")

    with pytest.raises(asset_module.AssetError, match="botocore, which the Lambda runtime"):
        asset_module.locked_versions(lock)


def test_asset_hash_depends_on_content_only():
    assert asset_module.plan().hash == asset_module.plan().hash


def test_asset_refuses_a_compiled_module_without_fallback(tmp_path):
    # Given a distribution whose only module is a compiled extension
    (tmp_path / "fast.cpython-313-x86_64-linux-gnu.so").write_bytes(b"\0")
    (tmp_path / "fast-1.0.dist-info").mkdir()
    (tmp_path / "fast-1.0.dist-info" / "METADATA").write_text("Name: fast\nVersion: 1.0\n")
    (tmp_path / "fast-1.0.dist-info" / "RECORD").write_text(
        "fast.cpython-313-x86_64-linux-gnu.so,,\nfast-1.0.dist-info/METADATA,,\n"
    )
    (dist,) = importlib.metadata.distributions(path=[str(tmp_path)])

    # Then it cannot go into the asset
    with pytest.raises(asset_module.AssetError, match="without a pure-Python fallback"):
        asset_module._distribution_files(dist)


def test_asset_skips_what_lambda_never_needs():
    assert asset_module._skipped(PurePosixPath("pkg/__pycache__/m.cpython-313.pyc"))
    assert asset_module._skipped(PurePosixPath("pkg/tests/test_m.py"))
    assert asset_module._skipped(PurePosixPath("pkg-1.0.dist-info/RECORD"))
    assert not asset_module._skipped(PurePosixPath("pkg-1.0.dist-info/METADATA"))
    assert not asset_module._skipped(PurePosixPath("pkg/m.py"))


def test_asset_runtime_package_and_libraries_import_alone(assembly, runtime_dir):
    # Given every non-handler module of grid_reingest and the libraries it bundles
    root = assembly.asset_dir()
    modules = sorted(
        "grid_reingest."
        + p.relative_to(root / "grid_reingest").with_suffix("").as_posix().replace("/", ".")
        for p in (root / "grid_reingest").rglob("*.py")
        if "handlers" not in p.parts and p.name != "__init__.py"
    )

    # When imported with only the asset and the runtime on the path
    origins = import_in_isolation(
        root,
        runtime_dir,
        [*modules, "requests", "aws_lambda_powertools.logging", "aws_lambda_powertools.metrics"],
    )

    # Then everything came from there, and charset_normalizer runs its pure-Python fallback
    assert_only_from(origins, root, runtime_dir)
    assert origins["charset_normalizer.md"].endswith("md.py")
    assert origins["requests"].startswith(str(root))
    assert origins["boto3"].startswith(str(runtime_dir))


@pytest.mark.parametrize("service", sorted(HANDLERS))
def test_asset_handler_imports_alone_with_its_deployed_environment(assembly, runtime_dir, service):
    root = assembly.asset_dir()
    module = HANDLERS[service]
    if not (root / (module.replace(".", "/") + ".py")).exists():
        pytest.skip(f"{module} is not written yet")
    raw = assembly.raw("TEST")
    deployed = [
        f["Properties"]["Environment"]["Variables"]
        for f in raw["Resources"].values()
        if f["Type"] == "AWS::Lambda::Function"
        and f["Properties"]["FunctionName"] == c.resource_name(service, "TEST")
    ]
    if not deployed:
        pytest.skip(f"{service} is optional and cdk.json's TEST has none")
    (env,) = deployed

    origins = import_in_isolation(
        root,
        runtime_dir,
        [module],
        {**env, "AWS_LAMBDA_FUNCTION_NAME": c.resource_name(service, "TEST")},
    )

    assert_only_from(origins, root, runtime_dir)
    assert origins[module].startswith(str(root))
