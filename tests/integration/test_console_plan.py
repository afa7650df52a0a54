"""`reingest plan` as an operator reads it: the file refused as `run` refuses it, the
deployment it priced named, arm64, the upload's time, the tally and watching priced."""

from __future__ import annotations

import gzip
import json

import pytest

from grid_reingest.domain.states import ProgressState as S
from grid_reingest_cli.main import main
from tests.integration.console_harness import deploy_stage, grid_id


def reingest(*argv: str) -> int:
    return main(list(argv))


def ids(n: int) -> list[str]:
    return [grid_id(i) for i in range(1, n + 1)]


BAD_FILES = {
    "empty": (b"", "no ids found (0 line(s), all blank or invalid)"),
    "header": (
        b"image_id\n" + "".join(f"{i}\n" for i in ids(3)).encode(),
        "1 invalid line(s); nothing written",
    ),
    "binary": (b"\x00\x01\x02garbage\n\x7f\x00", "a binary file, not text of ids"),
    "gzip": (gzip.compress(b"".join(f"{i}\n".encode() for i in ids(3))), "a gzip file"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_plan_and_dry_run_refuse_a_file_as_run_does(stage, tmp_path, capsys, kind):
    # Given a file the real run refuses
    content, message = BAD_FILES[kind]
    path = tmp_path / f"{kind}.txt"
    path.write_bytes(content)
    answers = {}
    for argv in (
        ["run", str(path), "--stage", "TEST", "--yes"],
        ["plan", str(path), "--stage", "TEST"],
        ["run", str(path), "--stage", "TEST", "--dry-run"],
    ):
        # When each looks at it
        code = reingest(*argv)
        err = capsys.readouterr().err
        # (the line after "reingest <command>: error: ")
        last = err.splitlines()[-1].split(": error: ", 1)[1]
        answers[argv[0] + ("-dry" if "--dry-run" in argv else "")] = (code, last)
    # Then each refuses it the same way: exit 2, the same last line, nothing written
    assert {code for code, _ in answers.values()} == {2}, answers
    assert len({line for _, line in answers.values()}) == 1, answers
    assert message in answers["plan"][1]
    assert stage.table.count(S.NOT_STARTED) == 0


def test_plan_skip_invalid_plans_the_valid_ids(stage, tmp_path, capsys):
    path = tmp_path / "ids.csv"
    path.write_text("image_id\n" + "".join(f"{i}\n" for i in ids(4)))
    assert reingest("plan", str(path), "--stage", "TEST", "--skip-invalid", "--json") == 0
    assert json.loads(capsys.readouterr().out)["ids"] == 4


@pytest.fixture
def stage(aws, table):
    return deploy_stage(aws, table, PROJECTION_FUNCTION_NAME="grid-reingest-image-projection-TEST")


def test_plan_names_where_its_figures_come_from(stage, ids_path, capsys):
    path = ids_path(ids(10))
    # With --stage: the deployed functions, arm64
    assert reingest("plan", path, "--stage", "TEST") == 0
    staged = capsys.readouterr().out
    assert "deployment      grid-reingest-TEST's functions: arm64, 32 images in flight" in staged
    assert "image-projection a Lambda" in staged
    # With --table: assumed, and said so, with why --stage differs
    assert reingest("plan", path, "--table", stage.table.name) == 0
    tabled = capsys.readouterr().out
    assert "deployment      not read (--table names a table, not a stack)" in tabled
    assert "--stage reads the deployed functions" in tabled


def test_plan_prints_the_upload_the_tally_and_watching(stage, ids_path, capsys):
    assert reingest("plan", ids_path(ids(1000)), "--stage", "TEST", "--sources") == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line and line[0] != " "}
    assert "set by" in lines["upload"]
    assert "batches of state-counts" in lines["tally"]
    assert "looks at 60 s" in lines["watching"]
    assert "arm64" in lines["Lambda"]
    # and --sources dates the arm64 price
    assert "Arm price: $0.0000133334 per GB-second" in out
    assert "recorded December 2026" in out
