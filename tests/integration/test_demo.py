"""`make demo`'s script, run as an operator runs it: its own servers, a small pass."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.py"


def run_demo(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO), *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )


def test_demo_runs_a_pass_that_ends_as_planted_and_leaves_its_files(tmp_path):
    # Given a folder for the demo's files
    out = tmp_path / "pass"
    # When the demo runs a pass over 40 ids, one of each planted failure among them
    done = run_demo("--ids", "40", "--mix", "0.05", "--out", str(out))
    # Then it ends as planted, and says so
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "the pass went as planted" in done.stdout
    # And watch's live progress showed the controller's limit
    assert "controller   " in done.stdout
    # And the failures came grouped by reason, one group per planted failure
    groups = json.loads((out / "failures.json").read_text())["groups"]
    assert sorted(g["states"][0] for g in groups) == [4, 8, 9001]
    assert all(g["count"] == 1 for g in groups)
    assert "corrupt originals: image-loader fails with an error known" in done.stdout
    # And the next step names the retryable group: the one at state 8
    retry = next(g["id"] for g in groups if g["states"] == [8])
    assert f"reingest reset --stage DEMO --reason {retry}" in done.stdout
    assert "would move 1 item(s) to 0" in done.stdout
    # And its files are there, their paths printed
    for name in ("ids.txt", "statuses.tsv", "failures.json"):
        assert (out / name).is_file()
        assert str(out / name) in done.stdout
    assert len((out / "statuses.tsv").read_text().splitlines()) == 40


def test_demo_refuses_a_mix_that_is_not_a_share(tmp_path):
    # When the demo is asked to break more than half the images
    done = run_demo("--mix", "0.9", "--out", str(tmp_path / "pass"))
    # Then it says what is wrong with which option, and starts nothing
    assert done.returncode == 2
    assert "argument --mix: 0.9: a share between 0 and 0.5" in done.stderr
    assert not (tmp_path / "pass").exists()


def load_demo(monkeypatch):
    """scripts/demo.py as a module (it is a script, not in a package)."""
    spec = importlib.util.spec_from_file_location("demo_script", DEMO)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "demo_script", module)
    spec.loader.exec_module(module)
    return module


def test_demo_compare_names_the_images_that_did_not_end_as_planted(monkeypatch):
    # Given the demo's plan for three ids, one of them a corrupt original
    demo = load_demo(monkeypatch)
    corrupt = next(k for k in demo.KINDS if k.key == "corrupt")
    ids = ["a" * 40, "b" * 40, "c" * 40]
    # When the corrupt original ended verified and another image at 8
    problems = demo.compare(
        ids, {ids[0]: corrupt}, {ids[0]: (6, 0), ids[1]: (8, 3), ids[2]: (6, 0)}
    )
    # Then each difference is named, though as many images were verified as planned
    assert problems == [
        "1 of the corrupt originals ended at [6], not 4",
        "1 of the others ended at [8], not 6",
    ]
