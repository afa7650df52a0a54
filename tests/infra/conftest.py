"""The app synthesized once per session (with cdk-nag), and helpers to read its templates."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def _silence_node_end_of_life_banner() -> None:
    # jsii only stays quiet about an end-of-life Node when the variable lists
    # that Node's major version; it must be set before jsii starts Node.
    variable = "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"
    try:
        version = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return
    major = version.strip().lstrip("v").split(".")[0]
    listed = [v for v in os.environ.get(variable, "").split(",") if v]
    if major not in listed:
        os.environ[variable] = ",".join([*listed, major])


_silence_node_end_of_life_banner()

from aws_cdk.assertions import Template  # noqa: E402 - after the Node banner is silenced

from grid_reingest import names  # noqa: E402
from infra import constants as c  # noqa: E402
from infra.app import build_app, cdk_json_context, synth  # noqa: E402


@dataclass(frozen=True)
class Assembly:
    """A synthesized app: each stack's template, the nag report, the Lambda asset."""

    outdir: Path
    nag_error: str | None  # the synth error when cdk-nag found something

    def raw(self, stage: str) -> dict[str, Any]:
        """The template of `stage` as JSON."""
        return json.loads((self.outdir / f"{names.stack_name(stage)}.template.json").read_text())

    def template(self, stage: str) -> Template:
        """The template of `stage`, for `aws_cdk.assertions`."""
        return Template.from_json(self.raw(stage))

    @property
    def nag_report(self) -> dict[str, Any]:
        """cdk-nag's findings (CDK's policy validation report)."""
        return json.loads((self.outdir / "validation-report.json").read_text())

    def asset_dir(self, stage: str = "TEST") -> Path:
        """The bundled Lambda code of `stage`'s functions."""
        manifest = json.loads((self.outdir / f"{names.stack_name(stage)}.assets.json").read_text())
        (asset,) = [a for a in manifest["files"].values() if a["source"].get("packaging") == "zip"]
        return self.outdir / asset["source"]["path"]

    def manifest(self) -> dict[str, Any]:
        """The cloud assembly manifest (stack properties such as termination protection)."""
        return json.loads((self.outdir / "manifest.json").read_text())


def synthesize(outdir: Path, context: Mapping[str, Any], stages=c.STAGES) -> Assembly:
    """Synthesize the app, with cdk-nag, into `outdir`; its failures are kept, not raised."""
    app = build_app(context, outdir=str(outdir), stages=stages, nag=True)
    return Assembly(outdir, synth(app))


@pytest.fixture(scope="session")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assembly]:
    """Both stages from cdk.json, synthesized once per session with AwsSolutions checks."""
    yield synthesize(tmp_path_factory.mktemp("cdk.out"), cdk_json_context())


# Every optional feature switched on, to check what each one adds.
VARIANT_OVERRIDES: dict[str, Any] = {
    "projectionFunctionUrl": True,
    "apiKeyKmsKeyArn": (
        "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-4000-8000-0000000000aa"
    ),
    "alarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:Cloudwatch-Alerts",
    "alarmEmail": None,  # TEST's own topic gives way to the existing one
    "backpressureStreamNames": ["thrall-a", "thrall-b"],
    "gridServiceUrls": {"media-api": "http://127.0.0.1:9999/api"},
}


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """TEST with every optional feature on (one more synth, TEST only)."""
    context = cdk_json_context()
    context[c.STAGES_CONTEXT_KEY]["TEST"].update(VARIANT_OVERRIDES)
    return synthesize(tmp_path_factory.mktemp("cdk.out-variant"), context, ["TEST"])


def resources(raw: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Every resource of CloudFormation type `kind`, by logical id."""
    return {k: v for k, v in raw["Resources"].items() if v["Type"] == kind}


def function_id(raw: Mapping[str, Any], service: str, stage: str = "TEST") -> str:
    """The logical id of a function, found by its physical name."""
    name = c.resource_name(service, stage)
    (found,) = [
        k
        for k, v in resources(raw, "AWS::Lambda::Function").items()
        if v["Properties"]["FunctionName"] == name
    ]
    return found


def function_props(raw: Mapping[str, Any], service: str, stage: str = "TEST") -> dict[str, Any]:
    """A function's properties, found by its physical name."""
    return raw["Resources"][function_id(raw, service, stage)]["Properties"]


def role_statements(raw: Mapping[str, Any], service: str, stage: str = "TEST") -> list[dict]:
    """Every statement of every policy attached to a function's role."""
    role = function_props(raw, service, stage)["Role"]["Fn::GetAtt"][0]
    statements = []
    for policy in resources(raw, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def single_id(raw: Mapping[str, Any], kind: str) -> str:
    """The logical id of the one resource of type `kind`."""
    (found,) = resources(raw, kind)
    return found
