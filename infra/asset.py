"""The Lambda code asset: `grid_reingest` plus the third-party packages it needs.

Built at synth time without Docker and without the network, by copying the
installed distributions of this environment by their `importlib.metadata` file
lists. What goes in:

- `lambdas/grid_reingest`;
- the closure of the project's runtime dependencies (pyproject.toml), with
  environment markers evaluated for the Lambda runtime, minus what the Lambda
  Python runtime already provides (boto3 and botocore, which are not descended
  into);
- each file byte-compiled to an unchecked-hash .pyc when synthesized by the
  runtime's Python version: /var/task is read-only, so without them every cold
  start compiles every module it imports.

What stays out: __pycache__ of this machine, tests, type stubs, compiled
extension modules (each must have a pure-Python fallback beside it, which keeps
the asset architecture-independent) and Powertools' Swagger UI bundle.

Example::

    code = runtime_code()  # an aws_lambda.Code for every function of one stack
"""

from __future__ import annotations

import compileall
import hashlib
import importlib.metadata
import importlib.util
import py_compile
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
# The directory whose packages are the runtime code (only grid_reingest lives there).
SOURCE_ROOT = ROOT / "lambdas"
PACKAGE = "grid_reingest"

# The Lambda runtime the functions run on and the asset is built for.
RUNTIME = lambda_.Runtime.PYTHON_3_11
TARGET_PYTHON = tuple(int(part) for part in RUNTIME.name.removeprefix("python").split("."))
TARGET_MARKERS = {
    "python_version": "{}.{}".format(*TARGET_PYTHON),
    "python_full_version": "{}.{}.0".format(*TARGET_PYTHON),
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
}
# Shipped in Lambda's Python runtime: bundling them would only add megabytes.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore"})
# Bump when the selection rules change, so that the asset hash changes with them.
BUNDLE_FORMAT = "3"

_SKIPPED_DIRS = frozenset({"__pycache__", "tests", "test"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".pyi")
_COMPILED_SUFFIXES = (".so", ".pyd")
_SKIPPED_METADATA = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
# Served only by Powertools' enable_swagger(), which these functions never call.
_SKIPPED_FILES = frozenset(
    {
        "aws_lambda_powertools/event_handler/openapi/swagger_ui/swagger-ui-bundle.min.js",
        "aws_lambda_powertools/event_handler/openapi/swagger_ui/swagger-ui.min.css",
    }
)


class AssetError(RuntimeError):
    """The runtime asset cannot be built from this environment; the message says why."""


@dataclass(frozen=True)
class AssetFile:
    """One file of the asset: where it goes and where it comes from."""

    target: PurePosixPath
    source: Path


@dataclass(frozen=True)
class AssetPlan:
    """Every file of the asset, the distributions they come from, and a hash of it all."""

    files: tuple[AssetFile, ...]
    distributions: tuple[str, ...]  # "canonical-name==version", sorted
    hash: str


def runtime_requirements() -> list[Requirement]:
    """The project's runtime dependencies, as pyproject.toml declares them."""
    with PYPROJECT.open("rb") as handle:
        project = tomllib.load(handle)["project"]
    return [Requirement(text) for text in project["dependencies"]]


def _applies(requirement: Requirement) -> bool:
    if requirement.marker is None:
        return True
    environment = {**default_environment(), **TARGET_MARKERS, "extra": ""}
    return requirement.marker.evaluate(environment)


def distributions_to_bundle() -> list[importlib.metadata.Distribution]:
    """Installed distributions the runtime code needs that Lambda does not provide."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = [r for r in runtime_requirements() if _applies(r)]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in RUNTIME_PROVIDED or name in found:
            continue
        try:
            dist = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            raise AssetError(
                f"{requirement.name} is needed at run time but not installed here; "
                "run `make venv` (pip install -e '.[dev,infra]')"
            ) from None
        if not requirement.specifier.contains(dist.version, prereleases=True):
            raise AssetError(
                f"{requirement} is needed at run time but {dist.version} is installed; "
                "run `make venv`"
            )
        found[name] = dist
        pending.extend(r for r in (Requirement(t) for t in dist.requires or []) if _applies(r))
    return [found[name] for name in sorted(found)]


def _skipped(path: PurePosixPath) -> bool:
    return (
        any(part in _SKIPPED_DIRS for part in path.parts[:-1])
        or path.name.endswith(_SKIPPED_SUFFIXES)
        or str(path) in _SKIPPED_FILES
        or (path.parent.name.endswith(".dist-info") and path.name in _SKIPPED_METADATA)
    )


def _distribution_files(dist: importlib.metadata.Distribution) -> list[AssetFile]:
    name = dist.metadata["Name"]
    if dist.files is None:
        raise AssetError(f"{name} was installed without a file list (RECORD); reinstall it")
    files = []
    for entry in dist.files:
        target = PurePosixPath(str(entry))
        if target.parts[0] == ".." or _skipped(target):  # console scripts live outside
            continue
        source = Path(str(entry.locate()))
        if target.name.endswith(_COMPILED_SUFFIXES):
            module = target.name.split(".", 1)[0]
            if not (source.parent / f"{module}.py").is_file():
                raise AssetError(
                    f"{name} has a compiled module {target} without a pure-Python fallback: "
                    "it would tie the asset to this machine's architecture"
                )
            continue  # the pure-Python module beside it is used instead
        files.append(AssetFile(target, source))
    return files


def _package_files() -> list[AssetFile]:
    package = SOURCE_ROOT / PACKAGE
    files = []
    for source in sorted(package.rglob("*")):
        target = PurePosixPath(source.relative_to(SOURCE_ROOT).as_posix())
        if source.is_file() and not _skipped(target):
            files.append(AssetFile(target, source))
    return files


def plan() -> AssetPlan:
    """Work out every file of the asset and its hash (the files' paths and bytes)."""
    dists = distributions_to_bundle()
    files = _package_files()
    for dist in dists:
        files.extend(_distribution_files(dist))
    seen: dict[PurePosixPath, Path] = {}
    for f in files:
        if f.target in seen:
            raise AssetError(f"{f.target} comes from both {seen[f.target]} and {f.source}")
        seen[f.target] = f.source
    files.sort(key=lambda f: f.target)
    digest = hashlib.sha256()
    digest.update(f"{BUNDLE_FORMAT}|{TARGET_PYTHON}|".encode())
    digest.update(importlib.util.MAGIC_NUMBER if _compiles() else b"no-pyc")
    for f in files:
        digest.update(str(f.target).encode() + b"\0")
        digest.update(f.source.read_bytes())
    return AssetPlan(
        files=tuple(files),
        distributions=tuple(f"{canonicalize_name(d.metadata['Name'])}=={d.version}" for d in dists),
        hash=digest.hexdigest(),
    )


def _compiles() -> bool:
    # A .pyc is only usable by the interpreter version that wrote it.
    return sys.version_info[:2] == TARGET_PYTHON


def build(output_dir: Path, asset: AssetPlan | None = None) -> AssetPlan:
    """Write the asset into `output_dir` (which must be empty or absent)."""
    asset = asset or plan()
    output_dir.mkdir(parents=True, exist_ok=True)
    for f in asset.files:
        target = output_dir / f.target
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f.source, target)
    if _compiles():
        # Unchecked: the zip CDK makes resets every mtime, which would make
        # timestamp-checked .pyc files look stale and be ignored.
        ok = compileall.compile_dir(
            output_dir,
            quiet=1,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        if not ok:
            raise AssetError(f"some files in {output_dir} do not compile")
    return asset


@jsii.implements(cdk.ILocalBundling)
class _LocalBundling:
    """Builds the asset in this process: CDK calls this instead of running Docker."""

    def __init__(self, asset: AssetPlan) -> None:
        self._asset = asset

    def try_bundle(self, output_dir: str, *_options: Any) -> bool:
        build(Path(output_dir), self._asset)
        return True


def runtime_code() -> lambda_.Code:
    """The code asset of one stack, shared by its functions (CDK wants one Code per stack).

    The hash is computed from the files that go in, so CDK skips bundling when
    an identical asset is already staged, and any change to the code or to a
    bundled distribution gives a new asset.
    """
    asset = plan()
    return lambda_.Code.from_asset(
        str(SOURCE_ROOT),
        asset_hash=asset.hash,
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        bundling=cdk.BundlingOptions(
            # Never pulled or run: local bundling always succeeds.
            image=cdk.DockerImage.from_registry("local-bundling-only"),
            local=_LocalBundling(asset),
        ),
    )
