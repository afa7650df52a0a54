"""`make local` as a developer uses it: up, the environment lines, a pass run against it by
the workers on their schedules, reused when started again, stopped by Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
LOCAL = [sys.executable, "-m", "devtools.local"]


def environment_of(lines: str) -> dict[str, str]:
    """The variables `export NAME=value` lines set (PATH with its $PATH tail)."""
    env = dict(os.environ)
    for line in lines.splitlines():
        name, value = line.removeprefix("export ").split("=", 1)
        env[name] = value.strip('"').replace("$PATH", os.environ.get("PATH", ""))
    return env


def _local(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LOCAL, "--home", str(home), *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


@pytest.fixture
def local(tmp_path):
    """`python -m devtools.local` up in the background, with its home in tmp_path."""
    home = tmp_path / "local"
    process = subprocess.Popen(
        [*LOCAL, "--home", str(home), "--port", str(free_port()), "--ids", "6", "--mix", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if "Ctrl-C stops everything" in line or process.poll() is not None:
            break
    try:
        yield process, home, "".join(lines)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


def test_local_stage_is_up_reused_and_runs_a_pass_until_ctrl_c(local):
    process, home, said = local
    # It says where it is and how to point reingest at it
    assert "stage LOCAL is up: emulated AWS at http://127.0.0.1:" in said, said
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:" in said
    assert "reingest run" in said and "--stage LOCAL" in said
    # The environment lines, asked for again, are the same
    env_lines = _local(home, "--env").stdout
    assert all(f"  {line}" in said for line in env_lines.splitlines())
    # Started again while it is up, it reuses it: no second stage
    again = _local(home)
    assert again.returncode == 0
    assert f"stage LOCAL is up already (process {process.pid}" in again.stdout
    # A pass run against it with reingest is done by the workers on their schedules
    env = environment_of(env_lines)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "grid_reingest_cli",
            "run",
            str(home / "ids.txt"),
            "--stage",
            "LOCAL",
            "--interval",
            "1",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "every image reached 6 (verified)" in run.stderr
    # Ctrl-C stops it, and says it is no longer up
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    assert not (home / "stage.json").exists()
    gone = _local(home, "--env")
    assert gone.returncode == 1 and "no local stage is up" in gone.stderr
