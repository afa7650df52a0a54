"""One stage's stack: the state table, the workers and their monitoring, and outputs."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Environment, Stack, Tags
from aws_cdk import aws_cloudwatch_actions as cw_actions
from constructs import Construct

from grid_reingest import names
from infra import constants as c
from infra.config import StageConfig
from infra.constructs.monitoring import Monitoring
from infra.constructs.repair import Repair
from infra.constructs.state_counts import StateCountsAlarms
from infra.constructs.state_table import StateTableConstruct
from infra.constructs.workers import Workers


class ReingestStack(Stack):
    """`grid-reingest-<STAGE>`: everything a reingestion pass of one stage runs on."""

    def __init__(self, scope: Construct, config: StageConfig, **kwargs: Any) -> None:
        name = names.stack_name(config.stage)
        super().__init__(
            scope,
            name,
            stack_name=name,
            description=f"grid-reingest ({config.stage}): state table, workers (keep-alive "
            "schedules, deployed off), dashboard and alarms",
            # Region only: synth needs no credentials, and the account is the one deployed to.
            env=Environment(region=config.region),
            termination_protection=config.is_production,
            **kwargs,
        )
        # The Grid's own tags, so cost reports and the Grid's tooling find the stack.
        Tags.of(self).add("App", names.APP)
        Tags.of(self).add("Stack", c.GRID_STACK)
        Tags.of(self).add("Stage", config.stage)

        # Its id is the table's logical id: a new one would replace the table, and its items.
        self.state_table = StateTableConstruct(self, "StateTable", config=config)
        self.workers = Workers(self, "Workers", config=config, table=self.state_table.table)
        functions = dict(self.workers.by_service)
        self.repair: Repair | None = None
        if config.repair is not None:
            self.repair = Repair(
                self,
                "Repair",
                config=config,
                repair=config.repair,
                table=self.state_table.table,
                code=self.workers.code,
            )
            functions[names.REPAIR] = self.repair.worker
        self.monitoring = Monitoring(self, "Monitoring", config=config, workers=functions)
        self.state_counts_alarms = StateCountsAlarms(
            self,
            "StateCounts",
            config=config,
            function=self.workers.state_counts.function,
            dashboard=self.monitoring.dashboard,
        )
        if self.monitoring.topic is not None:
            for alarm in self.state_counts_alarms.alarms.values():
                alarm.add_alarm_action(cw_actions.SnsAction(self.monitoring.topic))
        self._build_outputs()

    def _output(self, key: str, value: str, description: str) -> None:
        # No export: nothing imports these; scripts read them with DescribeStacks.
        output = CfnOutput(self, key, value=value, description=description)
        output.override_logical_id(key)

    def _build_outputs(self) -> None:
        self._output(names.STATE_TABLE_OUTPUT, self.state_table.table.table_name, "State table")
        for service, worker in self.workers.by_service.items():
            self._output(
                names.FUNCTION_OUTPUTS[service],
                worker.function.function_name,
                f"{service} function",
            )
            if worker.rule is not None:
                self._output(
                    names.RULE_OUTPUTS[service],
                    worker.rule.rule_name,
                    f"{service} schedule (deployed disabled)",
                )
        if self.repair is not None and self.repair.worker.rule is not None:
            self._output(
                names.REPAIR_FUNCTION_OUTPUT,
                self.repair.worker.function.function_name,
                "the scheduled repair's function",
            )
            self._output(
                names.REPAIR_RULE_OUTPUT,
                self.repair.worker.rule.rule_name,
                "the scheduled repair's schedule (on)",
            )
        self._output(
            names.FUNCTION_OUTPUTS[names.STATE_COUNTS],
            self.workers.state_counts.function.function_name,
            f"{names.STATE_COUNTS} function (the items per state, from the table's stream)",
        )
        self._output(
            names.DASHBOARD_OUTPUT, self.monitoring.dashboard.dashboard_name, "CloudWatch dashboard"
        )
        if self.workers.projection_url is not None:
            self._output(
                names.PROJECTION_URL_OUTPUT,
                self.workers.projection_url.url,
                "image-projection over HTTP (callers send X-Gu-Media-Key)",
            )
