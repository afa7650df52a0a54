"""The Lambda code asset: `grid_reingest` plus the third-party packages it needs.

Built at synth time without Docker and without AWS credentials. What goes in:

- `lambdas/grid_reingest`;
- the packages of the runtime lock (`requirements/runtime.txt`: pyproject.toml's
  dependencies less boto3, which Lambda's Python runtime provides), installed
  by pip from their hash-checked wheels for the functions' own platform
  (CPython 3.13, manylinux aarch64 up to glibc 2.34), never copied from this
  environment.
  The first build fetches them from the package registry; they are kept in
  `.cache/lambda-packages/<digest of the lock and target>` for every later one;
- each file byte-compiled to an unchecked-hash .pyc when synthesized by the
  runtime's Python version: /var/task is read-only, so without them every cold
  start compiles every module it imports.

What stays out: __pycache__, tests, type stubs, compiled extension modules
(each must have a pure-Python fallback beside it, which the tests can import
on any machine, so what ships is what was tested; pydantic-core alone has none
and ships as built for the target) and Powertools' Swagger UI bundle.

Example::

    code = runtime_code()  # an aws_lambda.Code for every function of one stack
"""

from __future__ import annotations

import compileall
import hashlib
import importlib.metadata
import importlib.util
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, cast

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"
# The directory whose packages are the runtime code (only grid_reingest lives there).
SOURCE_ROOT = ROOT / "lambdas"
PACKAGE = "grid_reingest"
# Where the locked packages, installed for the target, are kept between builds.
CACHE = ROOT / ".cache" / "lambda-packages"

# The Lambda runtime and architecture the functions run on and the asset is built for.
# docs/infra.md ("The functions") says why python3.13; infra/runtimes.py, until when.
RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64
TARGET_PYTHON = tuple(int(part) for part in RUNTIME.name.removeprefix("python").split("."))
# pip's names for it: Lambda's python3.13 runs on Amazon Linux 2023 (glibc 2.34), which
# runs manylinux wheels for glibc 2.17 to 2.34. pip takes each tag it may install by
# name (it widens only manylinux2014), newest first, as it ranks them on such a machine.
TARGET_PLATFORMS = (
    *(f"manylinux_2_{minor}_aarch64" for minor in range(34, 16, -1)),
    "manylinux2014_aarch64",
)
TARGET_ABIS = ("cp{}{}".format(*TARGET_PYTHON), "abi3", "none")
# Shipped in Lambda's Python runtime: bundling them would add megabytes (docs/infra.md).
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})
# Bump when the selection rules change, so that the asset hash changes with them.
BUNDLE_FORMAT = "5"

_SKIPPED_DIRS = frozenset({"__pycache__", "tests", "test"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".pyi")
_COMPILED_SUFFIXES = (".so", ".pyd")
# Compiled without a pure-Python fallback, and shipped as built for the functions'
# platform (pip fetched that wheel by the lock's hash): pydantic's core, at the
# version the tests run here.
_COMPILED_SHIPPED = frozenset({"pydantic-core"})
_SKIPPED_METADATA = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
# Served only by Powertools' enable_swagger(), which these functions never call.
_SKIPPED_FILES = frozenset(
    {
        "aws_lambda_powertools/event_handler/openapi/swagger_ui/swagger-ui-bundle.min.js",
        "aws_lambda_powertools/event_handler/openapi/swagger_ui/swagger-ui.min.css",
    }
)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


class AssetError(RuntimeError):
    """The runtime asset cannot be built; the message says why."""


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


def locked_versions(lock: Path = RUNTIME_LOCK) -> dict[str, str]:
    """Each package the runtime lock pins, by canonical name, and its version."""
    if not lock.is_file():
        raise AssetError(f"{lock} is missing: run `make lock`")
    found: dict[str, str] = {}
    for name, version in _PIN.findall(lock.read_text()):
        canonical = canonicalize_name(name)
        if canonical in found:
            raise AssetError(f"{lock} pins {canonical} twice: it must be locked for one platform")
        if canonical in RUNTIME_PROVIDED:
            raise AssetError(f"{lock} pins {canonical}, which the Lambda runtime provides")
        found[canonical] = version
    return found


def _pip_install_command(lock: Path, target: Path) -> list[str]:
    platforms = [arg for p in TARGET_PLATFORMS for arg in ("--platform", p)]
    abis = [arg for abi in TARGET_ABIS for arg in ("--abi", abi)]
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",  # the lock is the whole closure; pip checks each file's hash
        "--require-hashes",
        "--only-binary=:all:",
        "--no-compile",
        "--implementation",
        "cp",
        "--python-version",
        "{}.{}".format(*TARGET_PYTHON),
        *abis,
        *platforms,
        "--target",
        str(target),
        "--requirement",
        str(lock),
    ]


def locked_site(lock: Path = RUNTIME_LOCK, cache: Path = CACHE) -> Path:
    """A directory holding the lock's packages installed for the Lambda target.

    Installed once per lock content and target, then reused: a finished
    directory is moved into place whole, so concurrent builds never see half of one.
    """
    key = hashlib.sha256(
        "|".join([BUNDLE_FORMAT, *TARGET_PLATFORMS, *TARGET_ABIS]).encode() + lock.read_bytes()
    ).hexdigest()[:16]
    site = cache / key
    if site.is_dir():
        return site
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache))
    try:
        result = subprocess.run(  # noqa: S603 - this interpreter's pip, arguments made here
            _pip_install_command(lock, scratch / "site"),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode:
            raise AssetError(
                f"pip could not install {lock.name} for Lambda ({', '.join(TARGET_PLATFORMS)}): "
                f"{result.stderr.strip()[-2000:]}\n"
                "The first build fetches the wheels from the package registry."
            )
        try:
            os.rename(scratch / "site", site)
        except OSError:
            if not site.is_dir():  # another build moved its copy in first: use that one
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return site


def distributions_to_bundle(
    lock: Path = RUNTIME_LOCK, cache: Path = CACHE
) -> list[importlib.metadata.Distribution]:
    """The runtime lock's distributions, installed for Lambda; exactly the lock's versions."""
    expected = locked_versions(lock)
    site = locked_site(lock, cache)
    found = {
        canonicalize_name(d.metadata["Name"]): d
        for d in importlib.metadata.distributions(path=[str(site)])
    }
    got = {name: d.version for name, d in found.items()}
    if got != expected:
        raise AssetError(
            f"{site} holds {sorted(got.items())}, not {lock.name}'s {sorted(expected.items())}; "
            "delete it to reinstall"
        )
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
        raise AssetError(f"{name} has no file list (RECORD); delete {CACHE} to reinstall")
    files = []
    for entry in dist.files:
        target = PurePosixPath(str(entry))
        if target.parts[0] == ".." or _skipped(target):  # console scripts live outside
            continue
        source = Path(str(entry.locate()))
        if target.name.endswith(_COMPILED_SUFFIXES) and canonicalize_name(name) not in (
            _COMPILED_SHIPPED
        ):
            module = target.name.split(".", 1)[0]
            if not (source.parent / f"{module}.py").is_file():
                raise AssetError(
                    f"{name} has a compiled module {target} without a pure-Python fallback: "
                    "the asset could not be imported, and so not tested, on another architecture"
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
            local=cast(cdk.ILocalBundling, _LocalBundling(asset)),
        ),
    )
