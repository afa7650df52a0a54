"""The CDK app: one stack per stage, configured from the `stages` context in cdk.json.

Run by the CDK CLI (`npx aws-cdk@2 synth`, see cdk.json) or on its own
(`python -m infra.app`, which reads cdk.json itself and writes cdk.out/).
Neither needs AWS credentials, Docker or the network.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra import constants as c
from infra.asset import RUNTIME
from infra.config import ConfigError, StageConfig, load_stage_config
from infra.stack import ReingestStack
from infra.synth_warnings import runtime_warning, stage_warnings

ROOT = Path(__file__).resolve().parents[1]
CDK_JSON = ROOT / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    """The context cdk.json declares (what the CLI would pass, without -c overrides)."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text())["context"]
    return context


def build_app(
    context: Mapping[str, Any] | None = None,
    *,
    outdir: str | None = None,
    stages: Iterable[str] = c.STAGES,
    nag: bool = False,
) -> App:
    """An app with one stack per stage; with `nag`, synth fails on any unacknowledged
    AwsSolutions finding.

    `context` replaces what the CLI would pass (None: the CLI's, via CDK_CONTEXT_JSON).
    Raises ConfigError when a stage's context is missing or invalid.

    Example::

        app = build_app(cdk_json_context(), outdir="cdk.out", stages=["TEST"])
        app.synth()
    """
    app = App(context=dict(context) if context is not None else None, outdir=outdir)
    for config in stage_configs(app, stages):
        ReingestStack(app, config)
    if nag:
        Validations.of(app).add_plugins(
            AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
        )
    return app


def stage_configs(app: App, stages: Iterable[str] = c.STAGES) -> list[StageConfig]:
    """Each stage's configuration from the app's context (a ConfigError naming bad keys)."""
    full_context = {c.STAGES_CONTEXT_KEY: app.node.try_get_context(c.STAGES_CONTEXT_KEY)}
    return [load_stage_config(full_context, stage) for stage in stages]


def deploy_warnings(app: App, today: date) -> list[str]:
    """What to fix before a real deploy: placeholders, a lease table not named as its
    stream, the runtime near its deprecation (infra/synth_warnings.py)."""
    found = [w for config in stage_configs(app) for w in stage_warnings(config)]
    runtime = runtime_warning(RUNTIME.name, today)
    return found + ([runtime] if runtime else [])


def main() -> int:
    """Synthesize every stage into cdk.out (or where the CLI asks)."""
    # The CLI always tells the app where to write; its context then comes from it too.
    from_cli = "CDK_OUTDIR" in os.environ
    try:
        app = build_app(
            None if from_cli else cdk_json_context(),
            outdir=os.environ.get("CDK_OUTDIR", str(ROOT / "cdk.out")),
            nag=True,
        )
        for warning in deploy_warnings(app, date.today()):
            print(f"warning: {warning}", file=sys.stderr)
        nag_failure = synth(app)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    if nag_failure is not None:
        # CDK has already printed each finding; no traceback on top of them.
        print(f"cdk-nag: {nag_failure}", file=sys.stderr)
        return 1
    return 0


def synth(app: App) -> str | None:
    """Synthesize `app`; cdk-nag's failure as text (the templates are written before
    validation fails), or None when it passed. Any other error is raised."""
    try:
        app.synth()
    except RuntimeError as error:
        if "Validation failed" not in str(error):
            raise
        return str(error)
    return None


if __name__ == "__main__":
    sys.exit(main())
