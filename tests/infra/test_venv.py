"""How `make venv` finds its Python (requirements/venv.sh), and that every place
naming the Python version names the functions' runtime.

The script runs with a PATH of stand-ins only: fake interpreters that answer
the version probe and make a fake venv, a fake pyenv, and the few commands the
script uses, so that what this machine has installed cannot change the result.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "requirements" / "venv.sh"
VERSION = "3.13"

# Answers `-c` (the version probe) with its version; `-m venv DIR` makes DIR/bin/python.
_FAKE_PYTHON = """#!/bin/sh
if [ "$1" = "-m" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; exit 0; fi
echo {version}
"""
# pyenv's shim for a version not selected: on the PATH, but refuses to run.
_SHIM = '#!/bin/sh\necho "pyenv: $(basename $0): command not found" >&2\nexit 127\n'


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    """A directory for the PATH holding only the commands venv.sh uses besides Python."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("rm", "cat", "mkdir", "cp", "basename"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return bin_dir


def _fake_python(path: Path, version: str) -> Path:
    return _executable(path, _FAKE_PYTHON.format(version=version))


def _fake_pyenv(bin_dir: Path, prefixes: dict[str, Path]) -> None:
    cases = "".join(f'  {v}) echo "{p}" ;;\n' for v, p in prefixes.items())
    _executable(
        bin_dir / "pyenv",
        f'#!/bin/sh\n[ "$1" = prefix ] || exit 1\ncase "$2" in\n{cases}'
        "  *) echo \"pyenv: version '$2' not installed\" >&2; exit 1 ;;\nesac\n",
    )


def _run(bin_dir: Path, venv: Path, python: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(SCRIPT), VERSION, str(venv), python],
        capture_output=True,
        text=True,
        env={"PATH": str(bin_dir)},
        check=False,
        timeout=30,
    )


def test_venv_says_what_to_install_when_no_python_of_the_version_runs(machine, tmp_path):
    # Given pyenv's shim for python3.13 on the PATH, and a pyenv without a 3.13
    _executable(machine / f"python{VERSION}", _SHIM)
    _fake_pyenv(machine, {})

    # When .venv is made
    result = _run(machine, tmp_path / ".venv")

    # Then it stops, saying what it looked for and exactly what to install
    assert result.returncode == 1
    assert f"No Python {VERSION} found: neither python{VERSION} on the PATH" in result.stderr
    assert f"pyenv install {VERSION}" in result.stderr
    assert f"make PYTHON=/path/to/python{VERSION}" in result.stderr
    assert not (tmp_path / ".venv").exists()


def test_venv_finds_the_version_through_pyenv(machine, tmp_path):
    # Given the version installed by pyenv only, its shim on the PATH failing
    _executable(machine / f"python{VERSION}", _SHIM)
    prefix = tmp_path / "pyenv" / f"{VERSION}.0"
    _fake_python(prefix / "bin" / f"python{VERSION}", VERSION)
    _fake_pyenv(machine, {VERSION: prefix})

    # When .venv is made
    result = _run(machine, tmp_path / ".venv")

    # Then pyenv's interpreter made it
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{prefix}/bin/python{VERSION} -m venv {tmp_path / '.venv'}\n"
    assert (tmp_path / ".venv" / "bin" / "python").is_file()


def test_venv_prefers_the_version_on_the_path(machine, tmp_path):
    _fake_python(machine / f"python{VERSION}", VERSION)

    result = _run(machine, tmp_path / ".venv")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"python{VERSION} -m venv ")


def test_venv_of_another_python_is_made_again(machine, tmp_path):
    # Given a .venv made with Python 3.11, with something installed in it
    venv = tmp_path / ".venv"
    _fake_python(venv / "bin" / "python", "3.11")
    (venv / "stale").write_text("")
    _fake_python(machine / f"python{VERSION}", VERSION)

    # When .venv is made
    result = _run(machine, venv)

    # Then it says so, and the old one is gone
    assert result.returncode == 0, result.stderr
    assert f"{venv} has Python 3.11, not {VERSION}: making it again" in result.stderr
    assert not (venv / "stale").exists()
    assert (venv / "bin" / "python").is_file()


def test_venv_whose_python_no_longer_runs_is_made_again(machine, tmp_path):
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(tmp_path / "uninstalled" / "python3.13")
    _fake_python(machine / f"python{VERSION}", VERSION)

    result = _run(machine, venv)

    assert result.returncode == 0, result.stderr
    assert "has Python that does not run" in result.stderr
    assert (venv / "bin" / "python").is_file()


def test_venv_of_the_version_is_kept(machine, tmp_path):
    venv = tmp_path / ".venv"
    _fake_python(venv / "bin" / "python", VERSION)
    (venv / "installed").write_text("")

    result = _run(machine, venv)

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (venv / "installed").exists()


def test_venv_refuses_a_named_python_of_another_version(machine, tmp_path):
    # Given PYTHON naming a 3.11, though a right one is on the PATH
    python = _fake_python(tmp_path / "python3.11", "3.11")
    _fake_python(machine / f"python{VERSION}", VERSION)

    result = _run(machine, tmp_path / ".venv", str(python))

    assert result.returncode == 1
    assert f"PYTHON={python} is Python 3.11, not {VERSION}." in result.stderr
    assert not (tmp_path / ".venv").exists()


def test_venv_failing_to_make_leaves_nothing_half_made(machine, tmp_path):
    # Given an interpreter of the version whose venv module fails after a first file
    _executable(
        machine / f"python{VERSION}",
        '#!/bin/sh\nif [ "$1" = "-m" ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; '
        f"exit 1; fi\necho {VERSION}\n",
    )

    result = _run(machine, tmp_path / ".venv")

    assert result.returncode == 1
    assert not (tmp_path / ".venv").exists()


def _makefile_version() -> str:
    (version,) = re.findall(
        r"^PYTHON_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE
    )
    return version


@pytest.mark.slow
def test_python_version_is_the_functions_runtime_everywhere():
    from infra import asset  # the CDK starts Node: only this test pays for it

    lock = (ROOT / "requirements" / "lock.py").read_text()
    with (ROOT / "pyproject.toml").open("rb") as handle:
        pyproject = tomllib.load(handle)
    runtime = "{}.{}".format(*asset.TARGET_PYTHON)

    assert asset.RUNTIME.name == f"python{runtime}"
    assert _makefile_version() == runtime
    assert f'PYTHON_VERSION = "{runtime}"' in lock
    assert pyproject["project"]["requires-python"] == f">={runtime}"
    assert pyproject["tool"]["ruff"]["target-version"] == "py" + runtime.replace(".", "")
    # The tests run on the version that ships.
    assert "{}.{}".format(*sys.version_info[:2]) == runtime
