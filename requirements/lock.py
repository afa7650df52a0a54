"""Make the lock files from pyproject.toml, and check that they still agree with it.

Two locks, each with a sha256 for every file pip may install:

- `dev.txt`: everything `make` installs into .venv (the project's dependencies,
  its `dev`, `infra` and `inventory` extras, and the tools in `tools.in`), resolved for
  every platform on CPython 3.13;
- `runtime.txt`: what the Lambda asset ships (the project's dependencies less
  what Lambda's Python runtime provides), resolved for the functions' own
  platform, at the versions of `dev.txt`, so the tests run what ships.

    python requirements/lock.py            # re-resolve both, keeping pins where allowed; network
    python requirements/lock.py --upgrade  # the same with the newest releases allowed
    python requirements/lock.py --check  # fail when a lock and its inputs disagree; offline

The check needs no network: each lock's first lines record a digest of the
inputs it was resolved from (requirements, target, options), which the check
recomputes; it also names each direct requirement the lock lacks or pins
outside its range, and compares the two locks and the CDK CLI's pin.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYPROJECT = ROOT / "pyproject.toml"
TOOLS = HERE / "tools.in"
DEV_LOCK = HERE / "dev.txt"
RUNTIME_LOCK = HERE / "runtime.txt"
PACKAGE_JSON = ROOT / "package.json"
PACKAGE_LOCK = ROOT / "package-lock.json"

PYTHON_VERSION = "3.13"
EXTRAS = ("dev", "infra", "inventory")
# Lambda's python3.13 runtime runs on Amazon Linux 2023 (glibc 2.34); the functions are arm64.
LAMBDA_PLATFORM = "aarch64-manylinux_2_34"
# In Lambda's Python runtime already (infra/asset.py says why they are not bundled).
LAMBDA_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})
COMPILE_COMMAND = "make lock"
# Bump when the way the locks are made changes, so that the check asks for a re-lock.
LOCK_FORMAT = "1"

_DIGEST = re.compile(r"^# inputs: sha256=([0-9a-f]{64})$", re.MULTILINE)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)
_EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


class LockError(RuntimeError):
    """A lock file disagrees with pyproject.toml or with the other lock."""


@dataclass(frozen=True)
class Lock:
    """One lock file: where it is, what it is resolved from and for what."""

    path: Path
    title: str
    requirements: tuple[Requirement, ...]
    options: tuple[str, ...]  # uv pip compile's target options

    def digest(self) -> str:
        """A digest of everything the lock is resolved from (order-independent)."""
        lines = sorted(str(r) for r in self.requirements)
        text = "\n".join([LOCK_FORMAT, *self.options, *lines])
        return hashlib.sha256(text.encode()).hexdigest()

    def relative(self) -> str:
        """The lock's path as the messages show it."""
        return self.path.relative_to(ROOT).as_posix()


def _project() -> dict:
    with PYPROJECT.open("rb") as handle:
        return tomllib.load(handle)["project"]


def _tools() -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in TOOLS.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def runtime_requirements() -> list[Requirement]:
    """pyproject.toml's dependencies that the Lambda asset must carry."""
    return [
        Requirement(text)
        for text in _project()["dependencies"]
        if canonicalize_name(Requirement(text).name) not in LAMBDA_PROVIDED
    ]


def dev_lock() -> Lock:
    """The lock `make venv` installs."""
    project = _project()
    texts = [*project["dependencies"]]
    for extra in EXTRAS:
        texts.extend(project["optional-dependencies"][extra])
    return Lock(
        path=DEV_LOCK,
        title=f"Everything `make` installs into .venv: pyproject.toml with [{','.join(EXTRAS)}]"
        f"\n# and requirements/tools.in, for CPython {PYTHON_VERSION} on every platform",
        requirements=tuple([*(Requirement(t) for t in texts), *_tools()]),
        options=("--universal", "--python-version", PYTHON_VERSION),
    )


def runtime_lock() -> Lock:
    """The lock the Lambda asset is built from."""
    provided = ", ".join(sorted(LAMBDA_PROVIDED))
    return Lock(
        path=RUNTIME_LOCK,
        title="The Lambda asset's packages: pyproject.toml's dependencies less what "
        f"Lambda's runtime provides ({provided}),\n# for CPython {PYTHON_VERSION} on "
        f"{LAMBDA_PLATFORM}, at the versions of requirements/dev.txt",
        requirements=tuple(runtime_requirements()),
        options=(
            "--python-version",
            PYTHON_VERSION,
            "--python-platform",
            LAMBDA_PLATFORM,
            "--constraint",
            DEV_LOCK.relative_to(ROOT).as_posix(),
        ),
    )


def pins(path: Path) -> dict[str, set[str]]:
    """Each package of a lock file and the versions pinned for it (one per platform fork)."""
    found: dict[str, set[str]] = {}
    for name, version in _PIN.findall(path.read_text()):
        found.setdefault(canonicalize_name(name), set()).add(version)
    return found


def _uv() -> str:
    beside = Path(sys.executable).with_name("uv")
    return str(beside) if beside.exists() else "uv"


def make(lock: Lock, *, upgrade: bool = False) -> None:
    """Resolve `lock` with uv and write it: keeping the versions it pins where its inputs still
    allow them, or, with `upgrade`, the newest releases they allow."""
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "lock.txt"
        if lock.path.exists() and not upgrade:
            # uv takes the versions an existing output file pins as its preferences.
            output.write_text(lock.path.read_text())
        command = [
            _uv(),
            "pip",
            "compile",
            "--quiet",
            "--generate-hashes",
            "--custom-compile-command",
            COMPILE_COMMAND,
            *lock.options,
            "--output-file",
            str(output),
            "-",  # the requirements, from stdin
        ]
        subprocess.run(  # noqa: S603 - uv, with arguments made here
            command,
            input="".join(f"{r}\n" for r in lock.requirements),
            text=True,
            cwd=ROOT,
            check=True,
            env={**os.environ, "UV_NO_CONFIG": "1"},
        )
        body = output.read_text()
    header = (
        f"# {lock.title}.\n"
        "# Made by `make lock`; `make lock-check` fails when its inputs change.\n"
        f"# inputs: sha256={lock.digest()}\n"
    )
    lock.path.write_text(header + body)


def _direct_problems(lock: Lock, pinned: dict[str, set[str]]) -> list[str]:
    problems = []
    for requirement in lock.requirements:
        name = canonicalize_name(requirement.name)
        if name not in pinned:
            problems.append(f"{lock.relative()} has no {requirement.name} ({requirement})")
            continue
        outside = [v for v in pinned[name] if not requirement.specifier.contains(v, True)]
        if outside and len(outside) == len(pinned[name]):
            problems.append(
                f"{lock.relative()} pins {requirement.name}=={', '.join(sorted(outside))}, "
                f"outside {requirement}"
            )
    return problems


def _cdk_cli_problems() -> list[str]:
    declared = json.loads(PACKAGE_JSON.read_text())["devDependencies"]["aws-cdk"]
    if not _EXACT_VERSION.match(declared):
        return [f"package.json asks for aws-cdk {declared!r}: pin one exact version"]
    locked = json.loads(PACKAGE_LOCK.read_text())["packages"]["node_modules/aws-cdk"]["version"]
    if locked != declared:
        return [f"package-lock.json has aws-cdk {locked}, package.json {declared}: run npm install"]
    return []


def check() -> list[str]:
    """Every way the locks disagree with pyproject.toml, tools.in, each other or package.json."""
    problems = []
    locks = [dev_lock(), runtime_lock()]
    for lock in locks:
        if not lock.path.exists():
            problems.append(f"{lock.relative()} is missing")
            continue
        text = lock.path.read_text()
        pinned = pins(lock.path)
        direct = _direct_problems(lock, pinned)
        problems.extend(direct)
        recorded = _DIGEST.search(text)
        if not direct and (recorded is None or recorded.group(1) != lock.digest()):
            problems.append(
                f"{lock.relative()} was resolved from other inputs than pyproject.toml "
                "and requirements/tools.in hold now"
            )
        if "--hash=sha256:" not in text:
            problems.append(f"{lock.relative()} has no hashes")
    if RUNTIME_LOCK.exists() and DEV_LOCK.exists():
        dev = pins(DEV_LOCK)
        for name, versions in sorted(pins(RUNTIME_LOCK).items()):
            if name in LAMBDA_PROVIDED:
                problems.append(f"requirements/runtime.txt has {name}, which Lambda provides")
            elif not versions <= dev.get(name, set()):
                problems.append(
                    f"requirements/runtime.txt pins {name}=={', '.join(sorted(versions))} but "
                    f"requirements/dev.txt {', '.join(sorted(dev.get(name, {'nothing'})))}: "
                    "the tests would not run what ships"
                )
    problems.extend(_cdk_cli_problems())
    return problems


def main(argv: list[str] | None = None) -> int:
    """Make the locks, or with --check report every disagreement and exit 1 on any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check only (no network)")
    parser.add_argument(
        "--upgrade", action="store_true", help="the newest releases allowed, not the pinned ones"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for problem in problems:
            print(f"lock-check: {problem}", file=sys.stderr)
        if problems:
            print("lock-check: run `make lock` and commit requirements/", file=sys.stderr)
            return 1
        print("lock-check: requirements/*.txt and package-lock.json agree with their inputs")
        return 0
    # The runtime lock is constrained by the dev lock, so the dev lock goes first.
    for lock in (dev_lock(), runtime_lock()):
        make(lock, upgrade=args.upgrade)
        print(f"wrote {lock.relative()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
