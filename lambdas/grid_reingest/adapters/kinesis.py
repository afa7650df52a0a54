"""Publishing reingest-image records on thrall's stream (Kinesis PutRecords)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError

from grid_reingest.domain.backoff import sleep_before_retry
from grid_reingest.domain.thrall_message import split_calls
from grid_reingest.ports import PublishResult

# Kinesis rejects records of a call one by one (a hot shard, an internal error);
# those are sent again, with backoff, this many times before the image is failed.
MAX_SEND_ROUNDS = 6


class Publisher:
    """Sends records to thrall's stream with PutRecords, retrying only the rejected entries."""

    def __init__(
        self,
        client: Any,
        stream: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._target = (
            {"StreamARN": stream} if stream.startswith("arn:") else {"StreamName": stream}
        )
        self._sleep = sleep

    def publish(self, records: Sequence[tuple[str, bytes]]) -> PublishResult:
        """Send (image id, data) records; the partition key is the image id."""
        result = PublishResult()
        for chunk in split_calls(records):
            if result.call_error is None:
                self._send(chunk, result)
            else:
                # A whole call failed even after botocore's retries: the stream is
                # unusable now, so the rest is not tried.
                result.unsent += [image_id for image_id, _ in chunk]
        return result

    def _send(self, records: list[tuple[str, bytes]], result: PublishResult) -> None:
        pending = records
        for attempt in range(MAX_SEND_ROUNDS):
            if attempt:
                sleep_before_retry(attempt - 1, self._sleep)
            result.calls += 1
            try:
                response = self._client.put_records(
                    Records=[{"Data": data, "PartitionKey": i} for i, data in pending],
                    **self._target,
                )
            except ClientError as error:
                info = error.response.get("Error", {})
                result.call_error = f"kinesis: {info.get('Code')}: {info.get('Message')}"
                for image_id, _ in pending:
                    result.rejected.pop(image_id, None)
                    result.unsent.append(image_id)
                return
            retry = []
            for (image_id, data), entry in zip(pending, response["Records"], strict=True):
                if "ErrorCode" in entry:
                    retry.append((image_id, data))
                    result.rejected[image_id] = f"{entry['ErrorCode']}: {entry.get('ErrorMessage')}"
                else:
                    result.accepted.append(image_id)
                    result.rejected.pop(image_id, None)
            pending = retry
            if not pending:
                return
        for image_id, _ in pending:
            result.rejected[image_id] = (
                f"kinesis rejected the record {MAX_SEND_ROUNDS} times: {result.rejected[image_id]}"
            )
