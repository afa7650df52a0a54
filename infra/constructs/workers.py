"""The four Lambdas, their schedules, and exactly what each may touch.

- image-projection: reads the Grid API key; nothing else in AWS. Its reserved
  concurrency bounds the pass's projections in flight (with gridConcurrency).
- batch-index: the state table (its items and control item by key, the
  by-state index); puts records on thrall's stream (and asks its KMS key for
  data keys, through Kinesis only); reads thrall's iterator age and, when a
  stage names it, scans thrall's KCL lease table (its checkpoints); invokes
  image-projection; switches its own schedule off and on.
- batch-check: the state table, as batch-index; reads the Grid API key;
  switches its own schedule off and on, and batch-index's on (a check-first
  item media-api lacks goes back to it).
- both, where the stage has a scheduled repair: publish the report of the pass
  they end on its report topic.
- state-counts: reads the state table's stream (its event source); writes
  only the table's `~counts` items (the tally and its batch markers).

Both workers run continuously: the schedule is a keep-alive every minute, a
tick that cannot start within a minute is dropped (never queued or retried),
and reserved concurrency caps how many invocations run at once.

Every function's environment comes from environments.py, checked there as
each worker would load it at cold start.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as lambda_sources
from constructs import Construct

from grid_reingest import names
from infra import constants as c
from infra.asset import runtime_code
from infra.config import StageConfig
from infra.constructs.environments import check_environments, function_environments
from infra.constructs.functions import Worker, ack, build_function, keep_alive, role_of


class Workers(Construct):
    """image-projection, batch-index and batch-check, with their schedules (deployed off)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        environments = function_environments(config)
        check_environments(config, environments)
        self.code = code = runtime_code()
        self.projection = build_function(
            self,
            config,
            names.IMAGE_PROJECTION,
            code,
            environments[names.IMAGE_PROJECTION],
            timeout_seconds=config.projection_timeout_seconds,
            # Every projection batch-index can have in flight (the pass's ceiling is
            # at most this): a throttle is then a fault worth an alarm (another
            # caller), not a pass running at full speed.
            reserved_concurrency=config.projection_reserved_concurrency,
            description="Projects one Grid image: image-loader's re-projection merged with "
            "the data services",
        )
        self.batch_index = build_function(
            self,
            config,
            names.BATCH_INDEX,
            code,
            environments[names.BATCH_INDEX],
            timeout_seconds=c.WORKER_TIMEOUT_SECONDS,
            reserved_concurrency=config.batch_index.reserved_concurrency,
            schedule=keep_alive(config.batch_index.schedule_minutes),
            description="Claims ids, projects them and posts reingest-image messages on "
            "thrall's low-priority stream until its time budget is spent",
        )
        self.batch_check = build_function(
            self,
            config,
            names.BATCH_CHECK,
            code,
            environments[names.BATCH_CHECK],
            timeout_seconds=c.WORKER_TIMEOUT_SECONDS,
            reserved_concurrency=config.batch_check.reserved_concurrency,
            schedule=keep_alive(config.batch_check.schedule_minutes),
            description="Claims enqueued ids and records whether media-api has them, until "
            "its time budget is spent",
        )
        self.state_counts = build_function(
            self,
            config,
            names.STATE_COUNTS,
            code,
            environments[names.STATE_COUNTS],
            timeout_seconds=c.STATE_COUNTS_TIMEOUT_SECONDS,
            description="Keeps the state table's items per state (its ~counts item) from "
            "the table's stream",
        )
        self._count_states(table)
        self.projection_url = self._build_projection_url()
        self._grant_batch_index(table)
        self._grant_batch_check(table)
        self._grant_report_topic()
        self._grant_api_key(self.projection)
        self._grant_api_key(self.batch_check)

    @property
    def by_service(self) -> dict[str, Worker]:
        """Each worker by its service name."""
        return {
            names.IMAGE_PROJECTION: self.projection,
            names.BATCH_INDEX: self.batch_index,
            names.BATCH_CHECK: self.batch_check,
        }

    # -- building ---------------------------------------------------------

    def _count_states(self, table: dynamodb.ITable) -> None:
        # Each shard's records in order, one batch at a time, until it is counted: a batch
        # that fails is sent again (retries until the records expire, 24 h; the late
        # alarm goes off long before). Only writes to images are sent: `~control`'s and
        # the tally's own do not wake the function.
        self.state_counts.function.add_event_source(
            lambda_sources.DynamoEventSource(
                table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=c.STATE_COUNTS_BATCH_SIZE,
                max_batching_window=Duration.seconds(c.STATE_COUNTS_WINDOW_SECONDS),
                parallelization_factor=1,
                bisect_batch_on_error=False,
                filters=[
                    lambda_.FilterCriteria.filter(
                        {
                            "dynamodb": {
                                image: {names.STATE_ATTRIBUTE: {"N": lambda_.FilterRule.exists()}}
                            }
                        }
                    )
                    for image in ("NewImage", "OldImage")
                ],
            )
        )
        Validations.of(role_of(self.state_counts.function)).acknowledge(
            ack(
                "AwsSolutions-IAM5[Resource::*]",
                "dynamodb:ListStreams, granted by the event source mapping, has no "
                "resource-level permissions: AWS only accepts '*' for it. It lists stream "
                "ARNs; reading one is granted on the state table's stream alone.",
            )
        )
        # Its only writes: `~counts` and its batch markers (TransactWriteItems of an
        # update and a conditional put), by key.
        self.state_counts.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem", "dynamodb:PutItem"],
                resources=[table.table_arn],
                conditions={
                    "ForAllValues:StringLike": {
                        "dynamodb:LeadingKeys": [f"{names.TALLY_KEY_PREFIX}*"]
                    }
                },
            )
        )

    def _build_projection_url(self) -> lambda_.FunctionUrl | None:
        # Off unless a stage asks: batch-index invokes image-projection directly,
        # and a URL with auth NONE lets anyone on the internet start a slow
        # re-projection (the handler's X-Gu-Media-Key check runs only after
        # the invocation has been paid for).
        if not self._config.projection_function_url:
            return None
        return self.projection.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)

    # -- permissions ------------------------------------------------------

    def _rule_arn(self, service: str) -> str:
        # From the rule's fixed name, not rule.rule_arn: the rule already
        # depends on the function (its target), so the function's policy
        # depending on the rule would be a cycle.
        return Stack.of(self).format_arn(
            service="events",
            resource="rule",
            resource_name=c.resource_name(service, self._config.stage),
        )

    def _grant_own_rule(self, service: str, worker: Worker) -> None:
        worker.function.add_to_role_policy(
            iam.PolicyStatement(
                # Enable: a worker that disabled its rule and then found new work
                # (an upload raced its last look) switches it back on.
                actions=["events:DescribeRule", "events:DisableRule", "events:EnableRule"],
                resources=[self._rule_arn(service)],
            )
        )

    def _grant_table(self, worker: Worker, table: dynamodb.ITable) -> None:
        # What a worker does to the table, exactly: claims and outcomes are
        # conditional UpdateItems, the control item is read by key, and work is
        # found through the by-state index. No Scan, Put, Delete or batch call:
        # those are the operators' (the `reingest` commands run as a person).
        function = worker.function
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:UpdateItem"],
                resources=[table.table_arn],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query"],
                resources=[f"{table.table_arn}/index/{names.STATE_INDEX}"],
            )
        )

    def _grant_batch_index(self, table: dynamodb.ITable) -> None:
        config = self._config
        function = self.batch_index.function
        self._grant_table(self.batch_index, table)
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["kinesis:PutRecords"], resources=[config.thrall_stream_arn]
            )
        )
        # thrall's stream is encrypted: each PutRecords needs a data key (SPEC §5),
        # which Kinesis asks for on the caller's behalf; the key is no use otherwise.
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey"],
                resources=[config.thrall_stream_key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"kinesis.{config.region}.amazonaws.com"}
                },
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:GetMetricStatistics"],
                resources=["*"],
            )
        )
        if config.thrall_checkpoint_table:
            # thrall's checkpoints, a fresher view of its progress than
            # CloudWatch's. The table is thrall's: Scan only, nothing that
            # writes; the table alone (the lease table has no index); in the
            # stack's account and region, as the worker names it (no ARN).
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["dynamodb:Scan"],
                    resources=[
                        Stack.of(self).format_arn(
                            service="dynamodb",
                            resource="table",
                            resource_name=config.thrall_checkpoint_table,
                        )
                    ],
                )
            )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[self.projection.function.function_arn],
            )
        )
        self._grant_own_rule(names.BATCH_INDEX, self.batch_index)
        Validations.of(role_of(function)).acknowledge(
            ack(
                "AwsSolutions-IAM5[Resource::*]",
                "cloudwatch:GetMetricStatistics has no resource-level permissions: AWS only "
                "accepts '*' for it. It is read-only (thrall's iterator age, SPEC §6).",
            ),
        )

    def _grant_batch_check(self, table: dynamodb.ITable) -> None:
        self._grant_table(self.batch_check, table)
        self._grant_own_rule(names.BATCH_CHECK, self.batch_check)
        # A check-first item media-api lacks goes back to batch-index, which may have
        # switched itself off: batch-check switches it on (never off).
        self.batch_check.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["events:DescribeRule", "events:EnableRule"],
                resources=[self._rule_arn(names.BATCH_INDEX)],
            )
        )

    def _grant_report_topic(self) -> None:
        """The worker that ends a pass publishes its report on the stage's report topic."""
        if self._config.repair is None:
            return
        for worker in (self.batch_index, self.batch_check):
            worker.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["sns:Publish"], resources=[self._config.repair.report_topic_arn]
                )
            )

    def _grant_api_key(self, worker: Worker) -> None:
        config = self._config
        worker.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter"],
                resources=[
                    Stack.of(self).format_arn(
                        service="ssm",
                        resource="parameter",
                        resource_name=config.api_key_parameter.lstrip("/"),
                    )
                ],
            )
        )
        # With the default aws/ssm key no KMS permission is needed: its key
        # policy lets every principal of the account decrypt through SSM. A
        # customer-managed key needs kms:Decrypt, and only through SSM.
        if config.api_key_kms_key_arn:
            worker.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[config.api_key_kms_key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"ssm.{config.region}.amazonaws.com"}
                    },
                )
            )
