"""The lock check (`make lock-check`): offline, it names every way a lock and
pyproject.toml, the other lock or the CDK CLI's pin disagree."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# requirements/ is a folder of lock files, not a package: load its script by path.
_spec = importlib.util.spec_from_file_location("requirements_lock", ROOT / "requirements/lock.py")
lock = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = lock
_spec.loader.exec_module(lock)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of pyproject.toml, package.json and the locks that the check reads instead."""
    for name in ("pyproject.toml", "package.json", "package-lock.json"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "requirements").mkdir()
    for name in ("dev.txt", "runtime.txt", "tools.in"):
        shutil.copy(ROOT / "requirements" / name, tmp_path / "requirements" / name)
    monkeypatch.setattr(lock, "ROOT", tmp_path)
    monkeypatch.setattr(lock, "PYPROJECT", tmp_path / "pyproject.toml")
    monkeypatch.setattr(lock, "PACKAGE_JSON", tmp_path / "package.json")
    monkeypatch.setattr(lock, "PACKAGE_LOCK", tmp_path / "package-lock.json")
    for name in ("DEV_LOCK", "RUNTIME_LOCK", "TOOLS"):
        path = getattr(lock, name)
        monkeypatch.setattr(lock, name, tmp_path / "requirements" / path.name)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_lock_check_passes_on_the_committed_locks(project):
    assert lock.check() == []


def test_lock_check_names_a_dependency_the_lock_lacks(project):
    # Given a dependency added to pyproject.toml but not locked
    _edit(project / "pyproject.toml", '"requests>=2.31",', '"requests>=2.31",\n    "tomli-w>=1",')

    # Then both locks are named as lacking it
    problems = lock.check()

    assert "requirements/dev.txt has no tomli-w (tomli-w>=1)" in problems
    assert "requirements/runtime.txt has no tomli-w (tomli-w>=1)" in problems


def test_lock_check_names_a_pin_outside_pyproject_range(project):
    _edit(project / "pyproject.toml", '"pytest>=8",', '"pytest>=99",')

    (problem,) = lock.check()

    assert problem.startswith("requirements/dev.txt pins pytest==")
    assert problem.endswith("outside pytest>=99")


def test_lock_check_asks_for_a_relock_when_a_range_changes_within_the_pins(project):
    # Given a range loosened: the pins still satisfy it, but the lock was made from other inputs
    _edit(project / "pyproject.toml", '"requests>=2.31",', '"requests>=2.30",')

    problems = lock.check()

    assert problems == [
        f"requirements/{name} was resolved from other inputs than pyproject.toml "
        "and requirements/tools.in hold now"
        for name in ("dev.txt", "runtime.txt")
    ]


def test_lock_check_refuses_a_runtime_pin_the_tests_do_not_run(project):
    _edit(project / "requirements" / "runtime.txt", "\nidna==", "\nidna==0.0.")

    (problem,) = lock.check()

    assert problem.startswith("requirements/runtime.txt pins idna==0.0.")


def test_lock_check_refuses_a_cdk_cli_range(project):
    manifest = json.loads((project / "package.json").read_text())
    manifest["devDependencies"]["aws-cdk"] = "^" + manifest["devDependencies"]["aws-cdk"]
    (project / "package.json").write_text(json.dumps(manifest))

    (problem,) = lock.check()

    assert "pin one exact version" in problem
