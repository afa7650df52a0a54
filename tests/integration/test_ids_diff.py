"""`reingest ids diff A B`: the ids of A not in B, for files larger than memory."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from grid_reingest_cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def ids(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(160):040x}" for _ in range(n)]


def write(path: Path, lines: list[str], ending: str = "\n") -> str:
    path.write_text("".join(line + ending for line in lines))
    return str(path)


def test_diff_of_files_larger_than_the_memory_limit(tmp_path, capsys):
    # Given two files of ~50,000 ids each (about 2 MB each), overlapping by half, with
    # repeats, and a memory limit of 1 MB (about 9,500 ids a run)
    both = ids(25_000, 1)
    only_a = ids(25_000, 2)
    only_b = ids(25_000, 3)
    a_lines = both + only_a + only_a[:1000]
    b_lines = both + only_b
    random.Random(4).shuffle(a_lines)
    random.Random(5).shuffle(b_lines)
    a = write(tmp_path / "a.txt", a_lines)
    b = write(tmp_path / "b.txt", b_lines)
    assert Path(a).stat().st_size > 2**20
    out = tmp_path / "missing.txt"
    # When diffed
    code = main(["ids", "diff", a, b, "--memory-mb", "1", "--output", str(out)])
    # Then exactly the ids of A that B lacks are written, once each, sorted
    assert code == 0
    assert out.read_text().splitlines() == sorted(only_a)
    err = capsys.readouterr().err
    assert f"{a}: 51,000 line(s), 51,000 id(s) (1,000 repeated)" in err
    assert f"in {a}, not in {b}: 25,000 id(s) written to {out}" in err


def test_diff_ignores_what_editors_add_and_reads_stdin(tmp_path, monkeypatch, capsys):
    import io

    a_ids, b_ids = ids(5, 6), ids(3, 7)
    a = tmp_path / "a.txt"
    a.write_bytes(
        b"\xef\xbb\xbf" + b"\r\n".join(i.encode() for i in a_ids + b_ids[:1]) + b"\r\n\r\n"
    )
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("\n".join(b_ids).encode())))
    assert main(["ids", "diff", str(a), "-"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == sorted(a_ids)
    assert "1 blank" in captured.err
    assert "<stdin>: 3 line(s), 3 id(s)" in captured.err


def test_diff_refuses_lines_that_are_not_ids_before_writing_anything(tmp_path, capsys):
    a = write(tmp_path / "a.txt", [*ids(3, 8), "id,state", ids(1, 9)[0].upper()])
    b = write(tmp_path / "b.txt", ids(2, 10))
    out = tmp_path / "out.txt"
    assert main(["ids", "diff", a, b, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{a}:4: " in err and f"{a}:5: upper-case hex" in err
    assert "2 line(s) are not Grid ids; nothing written" in err
    assert not out.exists()
    # With --skip-invalid they are counted and left out
    assert main(["ids", "diff", a, b, "--output", str(out), "--skip-invalid"]) == 0
    assert out.read_text().splitlines() == sorted(ids(3, 8))
    assert "2 invalid, left out" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-", "-"], "A and B cannot both be - (stdin)"),
        (["same.txt", "same.txt"], "A and B are the same file"),
        (["missing.txt", "b.txt"], "missing.txt: no such file"),
        (["a.txt", "b.txt", "--memory-mb", "0"], "0 must be between 1 and"),
        (["a.txt", "b.txt", "--output", "nowhere/out.txt"], "does not exist"),
    ],
)
def test_diff_refuses_bad_arguments_with_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "a.txt", ids(2, 11))
    write(tmp_path / "b.txt", ids(2, 12))
    assert main(["ids", "diff", *argv]) == 2
    assert message in capsys.readouterr().err


def test_diff_into_a_closed_pipe_ends_quietly(tmp_path):
    # Given `reingest ids diff A B | head -1`
    a = write(tmp_path / "a.txt", ids(50_000, 13))
    b = write(tmp_path / "b.txt", ids(10, 14))
    command = (
        f"{sys.executable} -m grid_reingest_cli ids diff {a} {b} | head -1; "
        'echo "exit=${PIPESTATUS[0]}" >&2'
    )
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )
    # Then one id comes out, the command exits 141 and says nothing on stderr
    assert len(result.stdout.splitlines()) == 1
    assert result.stderr.strip().splitlines()[-1] == "exit=141"
    assert "Traceback" not in result.stderr
    assert "error" not in result.stderr


def test_diff_bare_prints_its_usage(capsys):
    assert main(["ids", "diff"]) == 2
    assert "usage: reingest ids diff" in capsys.readouterr().err
