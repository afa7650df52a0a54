"""What `make synth` (and every `cdk` command) warns about before a real deploy: values
cdk.json ships as placeholders, a lease table not named as its stream, a runtime near
its deprecation.

cdk.json ships each stage filled with stand-ins so that the app synthesizes and
the tests run without an AWS account: AWS's documentation account
(123456789012), all-zero KMS key ids, example.org addresses and made-up stream
names. A stage deployed with them deploys, and its workers then fail on
resources that are not there. Each warning names the context key and where the
real value is found (docs/infra.md, "A first real pass").

Example::

    for line in stage_warnings(load_stage_config(context, "TEST")):
        print(f"warning: {line}", file=sys.stderr)
"""

from __future__ import annotations

import re
from datetime import date

from infra import constants as c
from infra import runtimes
from infra.config import StageConfig

# AWS's own example account, as its documentation writes ARNs.
EXAMPLE_ACCOUNT = "123456789012"
_ZERO_KEY = re.compile(r":key/00000000-0000-")
_EXAMPLE_EMAIL = re.compile(r"@example\.(org|com|net)$")
# The stream name cdk.json ships; a Grid names its own (DEV: media-service-DEV-thrall-low-priority).
SHIPPED_STREAM = "media-service-{stage}-ThrallLowPriorityMessageStream"
WHERE = 'docs/infra.md, "A first real pass"'


def stage_warnings(config: StageConfig) -> list[str]:
    """Everything about `config` to fix before deploying it for real, each naming its key."""
    key = f"{c.STAGES_CONTEXT_KEY}.{config.stage}"
    found = []
    arns = {
        "thrallStreamArn": config.thrall_stream_arn,
        "thrallStreamKeyArn": config.thrall_stream_key_arn,
        "alarmTopicArn": config.alarm_topic_arn,
        "apiKeyKmsKeyArn": config.api_key_kms_key_arn,
    }
    for name, arn in arns.items():
        if arn and f":{EXAMPLE_ACCOUNT}:" in arn:
            found.append(
                f"{key}.{name} is in the placeholder account {EXAMPLE_ACCOUNT} ({arn}): put the "
                f"real ARN ({WHERE})"
            )
        elif arn and _ZERO_KEY.search(arn):
            found.append(f"{key}.{name} is the placeholder key {arn}: put the real one ({WHERE})")
    if config.thrall_stream_name == SHIPPED_STREAM.format(stage=config.stage):
        found.append(
            f"{key}.thrallStreamArn names the placeholder stream {config.thrall_stream_name}: "
            f"put thrall's low-priority stream, as the Grid's stack names it ({WHERE})"
        )
    table = config.thrall_checkpoint_table
    if table is not None and table != config.thrall_stream_name:
        found.append(
            f"{key}.thrallCheckpointTable is {table}, not {config.thrall_stream_name}: thrall's "
            "KCL lease table is named exactly as its stream (its KCL application name); "
            "batch-index will pace on CloudWatch's iterator age, minutes late"
        )
    if config.alarm_email and _EXAMPLE_EMAIL.search(config.alarm_email):
        found.append(
            f"{key}.alarmEmail is the placeholder {config.alarm_email}: put who should hear of "
            f"the alarms, or alarmTopicArn ({WHERE})"
        )
    return found


def runtime_warning(runtime: str, today: date) -> str | None:
    """The functions' runtime deprecated, or less than six months from it, on `today`."""
    problem = runtimes.support_problem(runtime, today)
    if problem is None:
        return None
    return f"every function runs on {runtime}: {problem} (infra/asset.py RUNTIME; docs/infra.md)"
