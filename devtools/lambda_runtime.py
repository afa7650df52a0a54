"""A stand-in for what the Lambda Python runtime provides beside a function's own code."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

# boto3 and what it needs: the Lambda runtime ships these, so the asset does not.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "dateutil", "six")
# Shipped compiled for the functions' platform (infra/asset.py): this machine's build of the
# same version goes first on the path, in their place.
NATIVE_MODULES = ("pydantic_core",)


def runtime_dir(directory: Path) -> Path:
    """Fill `directory` with links to this environment's copies of RUNTIME_MODULES, and
    its `native` subdirectory with NATIVE_MODULES."""
    for folder, modules in ((directory, RUNTIME_MODULES), (directory / "native", NATIVE_MODULES)):
        folder.mkdir(exist_ok=True)
        for name in modules:
            spec = importlib.util.find_spec(name)
            assert spec is not None and spec.origin is not None, name
            origin = Path(spec.origin)
            source = origin.parent if origin.name == "__init__.py" else origin
            (folder / source.name).symlink_to(source)
    return directory


def run_isolated(
    asset: Path, runtime: Path, body: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Python `body` in a fresh interpreter (`-I -S -B`) that sees only the asset and
    the runtime's packages, as on Lambda's read-only /var/task."""
    paths = [str(runtime / "native"), str(asset), str(runtime)]
    script = f"import sys\nsys.path[:0] = {paths!r}\n{body}"
    return subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**(env or {}), "PATH": "/usr/bin:/bin", "AWS_REGION": "eu-west-1"},
        check=False,
    )
