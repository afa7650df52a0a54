"""Peak memory of `reingest upload-ids` as the file grows: it must not grow with it.

The figure of interest is the command's own memory, so DynamoDB is a stub in
the measured process that accepts every write at once (no network, no
latency); everything else — reading and checking the file twice, the
duplicate window, the bounded batches in flight, the report — is the real
command.

    python -m benchmarks upload_memory [--sizes 1000000 10000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.report import machine, table, write_section
from devtools.servers import aws_environment

ROOT = Path(__file__).resolve().parents[1]
TARGET_MB = 200

# Runs in a fresh interpreter: a stub client in place of DynamoDB, then the real command.
PROBE = """
import sys, time
from grid_reingest_cli import common
from grid_reingest_cli.main import main

class Meta:
    region_name, endpoint_url = "stub", "stub"

class StubDynamoDB:
    meta = Meta()
    def describe_table(self, TableName):
        return {"Table": {"GlobalSecondaryIndexes": [{"IndexName": "by-state"}]}}
    def batch_get_item(self, RequestItems):
        return {"Responses": {}, "UnprocessedKeys": {}}
    def batch_execute_statement(self, Statements):
        return {"Responses": [{} for _ in Statements]}

common.client = lambda *args, **kwargs: StubDynamoDB()
started = time.perf_counter()
code = main(sys.argv[1:])
seconds = time.perf_counter() - started
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(int(peak.split()[1]), seconds, file=sys.stderr)
sys.exit(code)
"""


def write_ids(path: Path, n: int) -> None:
    """n distinct Grid ids, one per line."""
    with path.open("w") as out:
        for start in range(0, n, 100_000):
            out.write("".join(f"{i:040x}\n" for i in range(start, min(n, start + 100_000))))


def peak_rss(path: Path) -> tuple[float, float, str]:
    """Run upload-ids on `path` in a fresh process: peak RSS (MB), seconds, its summary."""
    # VmHWM, not getrusage: a forked child inherits its parent's ru_maxrss across exec.
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "upload-ids", "--table", "bench", str(path)],
        env={**os.environ, **aws_environment(), "PYTHONPATH": _pythonpath()},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    kb, seconds = result.stderr.strip().splitlines()[-1].split()
    return int(kb) / 1024, float(seconds), result.stdout


def _pythonpath() -> str:
    return os.pathsep.join(str(ROOT / p) for p in ("lambdas", "scripts", "."))


def main(argv: list[str] | None = None) -> None:
    """Measure and write the section of docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"ids-{n}.txt"
            write_ids(path, n)
            size_mb = path.stat().st_size / 2**20
            mb, seconds, summary = peak_rss(path)
            path.unlink()
            written = next(line for line in summary.splitlines() if line.startswith("written"))
            rows.append([f"{n:,}", f"{size_mb:,.0f} MB", f"**{mb:.0f} MB**", f"{seconds:,.0f} s"])
            print(f"{n:,} ids: peak {mb:.0f} MB in {seconds:.0f} s; {written}", flush=True)
    body = f"""\
Measured {machine()}. `reingest upload-ids FILE` in a fresh process, DynamoDB
replaced by a stub that accepts every write at once, so that the figure is the
command's own memory. Target: at most {TARGET_MB} MB at any size.

{table(["ids", "file", "peak RSS", "time (no round trips)"], rows)}

The file is read twice and never held: a first pass checks every line (and
counts them, for the progress bar's ETA), a second streams the ids in batches
of 100, at most `2 × --workers` batches in flight. Repeats are found within a
window of the last 100,000 to 200,000 ids (two generations of a set); a repeat
further away is found in the table (read, or its `INSERT` refused) and
reported as one. The time is the command's own CPU with every call answered
at once: what is left of an upload when the round trips cost nothing. Before
this design the command held every unique id of the file in a list and a set,
about 130 bytes an id: ~1.3 GB at 10M ids, 6.5 GB at 50M.

Re-run: `python -m benchmarks upload_memory [--sizes N ...]`.
"""
    write_section("upload-ids: memory at any size", body)


if __name__ == "__main__":
    main()
