"""Deploy one stage's stack into moto's CloudFormation, as `cdk deploy` would into AWS.

What the CDK CLI does before CreateStack is done here by hand: the bootstrap
version parameter and the assets bucket exist, and the Lambda asset is zipped
and uploaded under the key the template names. thrall's stream and its KMS key
are created first and their ARNs passed as context, as a Grid's would be.

Example::

    deployment = deploy_stage(aws, "TEST", {"gridConcurrency": 4})
    env = deployment.environments["batch-index"]  # run the handler in-process with it
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from grid_reingest import names
from infra import constants as c
from infra.app import build_app, cdk_json_context

REGION = "eu-west-1"
# What `cdk bootstrap` (modern template) writes; the template only needs >= 6.
BOOTSTRAP_VERSION = "30"
_TEMPLATE_BODY_MAX = 51_200  # CloudFormation's limit on an inline template


class DeployError(RuntimeError):
    """The stack did not reach CREATE_COMPLETE; the message lists the failed resources."""


@dataclass(frozen=True)
class Deployment:
    """What a deployed stage looks like from outside: what scripts and tests need."""

    stack_name: str
    outputs: dict[str, str]
    environments: dict[str, dict[str, str]]  # service name -> the function's environment
    stream_arn: str
    key_arn: str
    api_key_parameter: str
    assembly_dir: Path

    @property
    def table_name(self) -> str:
        """The state table's name (from the outputs)."""
        return self.outputs[names.STATE_TABLE_OUTPUT]

    def function_name(self, service: str) -> str:
        """A function's name (from the outputs), e.g. function_name("batch-index")."""
        return self.outputs[names.FUNCTION_OUTPUTS[service]]

    def rule_name(self, service: str) -> str:
        """A worker's schedule rule name (from the outputs)."""
        return self.outputs[names.RULE_OUTPUTS[service]]


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `override` laid over it, nested mappings merged key by key."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def deploy_stage(
    endpoint: str,
    stage: str = "TEST",
    context_overrides: Mapping[str, Any] | None = None,
    *,
    api_key: str = "test-api-key",
    outdir: Path | None = None,
) -> Deployment:
    """Create thrall's stream and key, synthesize `stage` and create its stack in moto.

    `context_overrides` is merged over cdk.json's `stages.<stage>` (after the
    stream and key ARNs, so a test may replace those too). The API-key
    parameter the stage names is created holding `api_key`.
    """
    clients = _Clients(endpoint)
    stream_arn, key_arn = _thrall_stream(clients, stage)
    lease_table = _thrall_lease_table(clients, stream_arn)
    stage_context = deep_merge(
        {
            "region": REGION,
            "thrallStreamArn": stream_arn,
            "thrallStreamKeyArn": key_arn,
            "thrallCheckpointTable": lease_table,
        },
        context_overrides or {},
    )
    context = deep_merge(cdk_json_context(), {c.STAGES_CONTEXT_KEY: {stage: stage_context}})
    assembly = Path(outdir or tempfile.mkdtemp(prefix="grid-reingest-cdk-"))
    build_app(context, outdir=str(assembly), stages=[stage]).synth()

    stack_name = names.stack_name(stage)
    template = json.loads((assembly / f"{stack_name}.template.json").read_text())
    account = clients.sts.get_caller_identity()["Account"]
    _bootstrap(clients, template)
    _publish_assets(clients, assembly / f"{stack_name}.assets.json", account)
    api_key_parameter = context[c.STAGES_CONTEXT_KEY][stage]["apiKeyParameter"]
    clients.ssm.put_parameter(
        Name=api_key_parameter, Value=api_key, Type="SecureString", Overwrite=True
    )
    _create_stack(clients, stack_name, template, account)

    stack = clients.cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    environments = {
        service: clients.lambda_.get_function_configuration(FunctionName=outputs[key])
        .get("Environment", {})
        .get("Variables", {})
        for service, key in names.FUNCTION_OUTPUTS.items()
    }
    return Deployment(
        stack_name=stack_name,
        outputs=outputs,
        environments=environments,
        stream_arn=stream_arn,
        key_arn=key_arn,
        api_key_parameter=api_key_parameter,
        assembly_dir=assembly,
    )


class _Clients:
    def __init__(self, endpoint: str) -> None:
        def make(service: str) -> Any:
            return boto3.client(service, endpoint_url=endpoint, region_name=REGION)

        self.cloudformation = make("cloudformation")
        self.dynamodb = make("dynamodb")
        self.kinesis = make("kinesis")
        self.kms = make("kms")
        self.lambda_ = make("lambda")
        self.s3 = make("s3")
        self.ssm = make("ssm")
        self.sts = make("sts")


def _thrall_stream(clients: _Clients, stage: str) -> tuple[str, str]:
    """thrall's low-priority stream, encrypted with its own key, as a Grid has it."""
    key_arn = clients.kms.create_key(Description=f"thrall stream key ({stage})")["KeyMetadata"][
        "Arn"
    ]
    name = f"thrall-low-priority-{stage}"
    clients.kinesis.create_stream(StreamName=name, ShardCount=1)
    clients.kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50}
    )
    clients.kinesis.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId=key_arn)
    summary = clients.kinesis.describe_stream_summary(StreamName=name)
    return summary["StreamDescriptionSummary"]["StreamARN"], key_arn


def _thrall_lease_table(clients: _Clients, stream_arn: str) -> str:
    """thrall's KCL lease table, named after its stream as thrall names it (no lease yet)."""
    name = stream_arn.rsplit("/", 1)[-1]
    clients.dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def _bootstrap(clients: _Clients, template: Mapping[str, Any]) -> None:
    """The parameter `cdk bootstrap` leaves behind, which the template's rule reads."""
    parameter = template.get("Parameters", {}).get("BootstrapVersion")
    if parameter:
        clients.ssm.put_parameter(
            Name=parameter["Default"], Value=BOOTSTRAP_VERSION, Type="String", Overwrite=True
        )


def _publish_assets(clients: _Clients, manifest_path: Path, account: str) -> None:
    """Zip and upload every file asset where the template expects it (`cdk-assets` does this)."""
    manifest = json.loads(manifest_path.read_text())
    for asset in manifest.get("files", {}).values():
        source = manifest_path.parent / asset["source"]["path"]
        for destination in asset["destinations"].values():
            bucket = (
                destination["bucketName"]
                .replace("${AWS::AccountId}", account)
                .replace("${AWS::Region}", REGION)
            )
            _ensure_bucket(clients, bucket)
            body = (
                _zip(source) if asset["source"].get("packaging") == "zip" else source.read_bytes()
            )
            clients.s3.put_object(Bucket=bucket, Key=destination["objectKey"], Body=body)


def _ensure_bucket(clients: _Clients, bucket: str) -> None:
    existing = {b["Name"] for b in clients.s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        clients.s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )


def _zip(directory: Path) -> bytes:
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(directory.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(directory).as_posix())
        handle.seek(0)
        return handle.read()


def _create_stack(
    clients: _Clients, stack_name: str, template: Mapping[str, Any], account: str
) -> None:
    body = json.dumps(template)
    source: dict[str, str] = {"TemplateBody": body}
    if len(body) > _TEMPLATE_BODY_MAX:
        bucket = f"{names.APP}-templates-{account}-{REGION}"
        _ensure_bucket(clients, bucket)
        clients.s3.put_object(Bucket=bucket, Key=f"{stack_name}.json", Body=body.encode())
        source = {"TemplateURL": f"https://{bucket}.s3.amazonaws.com/{stack_name}.json"}
    clients.cloudformation.create_stack(
        StackName=stack_name,
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        **source,
    )
    deadline = time.monotonic() + 60
    while True:
        stack = clients.cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise DeployError(f"{stack_name} still {status} after 60 s")
        time.sleep(0.2)
    if status != "CREATE_COMPLETE":
        events = clients.cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
        failed = [
            f"{e['LogicalResourceId']} ({e['ResourceType']}): {e.get('ResourceStatusReason')}"
            for e in events
            if e["ResourceStatus"].endswith("_FAILED")
        ]
        raise DeployError(f"{stack_name} is {status}:\n  " + "\n  ".join(failed or ["(no events)"]))
