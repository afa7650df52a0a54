"""The Lambda asset and the CDK app: cold import of each handler, asset size, synth time,
and the one-off install of the runtime lock for Lambda.

Cold import: each handler imported in a fresh interpreter (`-I -S -B`) that
sees only the asset and what Lambda's runtime provides (boto3, botocore and
their dependencies), as on Lambda's read-only /var/task; median of 10. Side by
side: the same asset without its precompiled .pyc files, which is what every
cold start would pay without them. Synth: the whole app (both stages, asset
bundling, cdk-nag) in a fresh process, as `make synth` runs it, with the
locked packages already cached. Install: pip installing requirements/runtime.txt
for Lambda into an empty cache, as the first synth on a machine does.

    python -m benchmarks.infra            # print the results
    python -m benchmarks.infra --write    # and write them to docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from benchmarks.report import machine, table, write_section
from devtools.lambda_runtime import run_isolated, runtime_dir
from infra import asset
from infra import constants as c

RUNS = 10
SYNTH_RUNS = 3
IMPORT_TARGET_MS = 300
SIZE_TARGET_MB = 10
ROOT = Path(__file__).resolve().parents[1]


def import_ms(code: Path, runtime: Path, module: str) -> float:
    """Milliseconds to import `module` in a fresh isolated interpreter."""
    body = (
        "import time\n"
        "start = time.perf_counter()\n"
        f"import {module}\n"
        "print((time.perf_counter() - start) * 1000)\n"
    )
    result = run_isolated(code, runtime, body)
    if result.returncode:
        raise RuntimeError(f"importing {module} failed: {result.stderr}")
    return float(result.stdout)


def median_import_ms(codes: list[Path], runtime: Path, module: str) -> list[float]:
    """For each code directory, the median of RUNS cold imports (interleaved run by run,
    so that a noisy neighbour hurts both sides alike)."""
    samples: list[list[float]] = [[] for _ in codes]
    for _ in range(RUNS):
        for code, times in zip(codes, samples, strict=True):
            times.append(import_ms(code, runtime, module))
    return [statistics.median(times) for times in samples]


def zipped_bytes(directory: Path) -> int:
    """The size of the directory as CDK uploads it (a deflated zip)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.tell()


def synth_seconds(outdir: Path) -> float:
    """Wall time of synthesizing the whole app in a fresh process."""
    script = (
        "from infra.app import build_app, cdk_json_context\n"
        f"build_app(cdk_json_context(), outdir={str(outdir)!r}, nag=True).synth()\n"
    )
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return time.perf_counter() - start


def install_seconds(cache: Path) -> float:
    """Wall time of installing the runtime lock for Lambda into an empty cache."""
    start = time.perf_counter()
    asset.locked_site(cache=cache)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Measure, print, and with --write record the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks.md")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        plan = asset.build(work / "asset")
        bare = work / "asset-without-pyc"
        shutil.copytree(work / "asset", bare)
        for cache in list(bare.rglob("__pycache__")):
            shutil.rmtree(cache)
        runtime = runtime_dir(work / "runtime")

        files = [p for p in (work / "asset").rglob("*") if p.is_file()]
        unzipped = sum(p.stat().st_size for p in files)
        zipped = zipped_bytes(work / "asset")

        modules = {service: handler.rsplit(".", 1)[0] for service, handler in c.HANDLERS.items()}
        rows = []
        for service, module in modules.items():
            with_pyc, without = median_import_ms([work / "asset", bare], runtime, module)
            rows.append(
                [
                    service,
                    f"**{with_pyc:.0f} ms**",
                    f"{without:.0f} ms",
                    f"{without / with_pyc:.1f}×",
                ]
            )
        synth = statistics.median(synth_seconds(work / f"cdk.out-{i}") for i in range(SYNTH_RUNS))
        install = install_seconds(work / "cache")

    bundled = ", ".join(plan.distributions)
    load = os.getloadavg()[0]
    body = f"""Measured {machine()}, load average {load:.1f} when it ended (other work on the
machine slows every cold import alike).

Cold import of each handler from the asset (median of {RUNS} fresh interpreters,
`python -I -S -B` with only the asset and boto3/botocore on the path, as on
Lambda's read-only /var/task); target ≤ {IMPORT_TARGET_MS} ms. Side by side: the
same asset without its precompiled .pyc files.

{table(["handler", "asset as shipped", "without .pyc", "ratio"], rows)}

| what | value | target |
|---|---|---|
| asset, unzipped ({len(files)} files) | **{unzipped / 1e6:.1f} MB** | ≤ {SIZE_TARGET_MB} MB |
| asset, zipped (as uploaded) | **{zipped / 1e6:.1f} MB** | |
| synth, both stages (median of {SYNTH_RUNS}) | **{synth:.1f} s** | |
| runtime lock installed for Lambda, empty cache (once per lock) | **{install:.1f} s** | |

- Synth: the whole app in a fresh process, as `make synth` runs it (Python
  and jsii start-up, asset bundling, cdk-nag).
- Bundled: {bundled}: exactly `requirements/runtime.txt`, installed from
  its wheels for manylinux2014 aarch64 and hash-checked; boto3, botocore and
  s3transfer come from the Lambda runtime. Compiled extension modules are left
  out (charset_normalizer runs its pure-Python fallback), so the asset the
  tests import here is the one that ships.
- Install: pip from its cache or the package registry; every later synth
  reuses `.cache/lambda-packages/`.
- The .pyc files are unchecked-hash (PEP 552): CDK's zip resets every mtime,
  which would make timestamp-checked ones stale, and /var/task is read-only,
  so without them every cold start compiles every module it imports.

Re-run: `python -m benchmarks.infra --write` (about a minute).
"""
    print(body)
    if args.write:
        write_section("Lambda asset and synth", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
