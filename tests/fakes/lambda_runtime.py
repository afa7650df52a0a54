"""A stand-in for what the Lambda Python runtime provides beside a function's own code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# boto3 and what it needs: the Lambda runtime ships these, so the asset does not.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "dateutil", "six")


def runtime_dir(directory: Path) -> Path:
    """Fill `directory` with links to this environment's copies of RUNTIME_MODULES."""
    directory.mkdir(exist_ok=True)
    for name in RUNTIME_MODULES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (directory / source.name).symlink_to(source)
    return directory
