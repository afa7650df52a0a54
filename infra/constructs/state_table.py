"""The state table: one item per image of a pass, found by state through `by-state`."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from grid_reingest import names
from infra import constants as c
from infra.config import StageConfig


class StateTableConstruct(Construct):
    """The DynamoDB table, keyed and indexed as `grid_reingest.names` names them.

    The adapter (`adapters/dynamodb/schema.py`) declares the same keys and
    index; tests/infra/test_state_table.py compares the two.

    A classic `Table` (not `TableV2`, a global table): one region is all a pass
    needs, and emulators deploy it. On demand, because a pass swings from bulk
    uploads of millions of ids to a few hundred claims a minute and then to
    nothing.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=c.resource_name(None, config.stage),
            partition_key=dynamodb.Attribute(
                name=names.ID_ATTRIBUTE, type=dynamodb.AttributeType.STRING
            ),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            # Every write, with the item before and after: state-counts keeps the items
            # per state from it, so that a look at a pass reads one item, not the index.
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            # Only the tally's batch markers expire; images never do.
            time_to_live_attribute=names.TTL_ATTRIBUTE,
            # A reset by state can be undone by restoring to a point before it.
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # PROD's record of what was reingested outlives the stack; TEST's does not.
            deletion_protection=config.is_production,
            removal_policy=(
                RemovalPolicy.RETAIN if config.is_production else RemovalPolicy.DESTROY
            ),
        )
        self.table.add_global_secondary_index(
            index_name=names.STATE_INDEX,
            partition_key=dynamodb.Attribute(
                name=names.STATE_SHARD_ATTRIBUTE, type=dynamodb.AttributeType.STRING
            ),
            sort_key=dynamodb.Attribute(
                name=names.CHANGED_AT_ATTRIBUTE, type=dynamodb.AttributeType.STRING
            ),
            # Written on every state change: keys only keeps each transition cheap
            # (docs/state-table.md).
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
