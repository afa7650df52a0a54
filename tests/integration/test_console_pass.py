"""`reingest run` over the real workers: the handlers invoked in-process on the emulator
and the simulated Grid, as the demo runs them."""

from __future__ import annotations

import json

from devtools.local_stage import local_stage
from devtools.testing import grid_id
from grid_reingest.domain.states import ProgressState as S
from grid_reingest_cli import watch
from grid_reingest_cli.main import main


def test_run_drives_the_real_workers_to_the_end_and_reports_the_failures(
    aws, table, grid, tmp_path, monkeypatch, capsys
):
    # Given 40 ids, two of which image-loader does not have, and the two real workers
    ids = [grid_id(i) for i in range(1, 41)]
    grid.index_all = False
    grid.missing.update(ids[:2])
    stage, schedule = local_stage(aws, table, grid, MAX_IN_FLIGHT="25", CHECK_MAX_IN_FLIGHT="25")
    monkeypatch.setattr(watch, "sleep", schedule)
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    # When the whole pass is run, for a script
    code = main(["run", str(path), "--stage", "TEST", "--interval", "1", "--output", "json"])
    # Then both workers ran until they switched themselves off; 38 verified, 2 at state 2
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert code == 3
    assert report["states"] == {str(int(S.NOT_FOUND)): 2, str(int(S.VERIFIED)): 38}
    assert "index" in schedule.invocations and "check" in schedule.invocations
    assert stage.rule("index") == stage.rule("check") == "DISABLED"
