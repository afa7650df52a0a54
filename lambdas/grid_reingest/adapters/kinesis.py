"""Publishing reingest-image records on thrall's stream (Kinesis PutRecords)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from grid_reingest.domain.backoff import sleep_before_retry
from grid_reingest.domain.thrall_message import split_calls
from grid_reingest.ports import PublishResult

# Kinesis rejects records of a call one by one (a hot shard, an internal error);
# those are sent again, with backoff, this many times before the image is failed.
MAX_SEND_ROUNDS = 6
# Errors that say the stream cannot take records from us at all (permissions, the
# stream's KMS key, no such stream, a malformed name or ARN): retrying cannot help,
# a person must fix the configuration. Anything else is taken to be transient.
REFUSED = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "ResourceNotFoundException",
        "ValidationException",
        "InvalidArgumentException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "KMSOptInRequired",
    }
)
# A record turned away for the shard's throughput: overload, not the image's fault.
THROUGHPUT = "ProvisionedThroughputExceededException"


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
                code = str(info.get("Code"))
                _unsent(result, pending, f"kinesis: {code}: {info.get('Message')}", code)
                return
            except BotoCoreError as error:  # no answer after botocore's retries
                _unsent(result, pending, f"kinesis: {error}", None)
                return
            retry = []
            for (image_id, data), entry in zip(pending, response["Records"], strict=True):
                if entry.get("ErrorCode") in REFUSED:
                    # The stream's key refuses this record: so it would every other.
                    _unsent(
                        result,
                        [(image_id, data)],
                        f"kinesis: {entry['ErrorCode']}: {entry.get('ErrorMessage')}",
                        entry["ErrorCode"],
                    )
                elif "ErrorCode" in entry:
                    retry.append((image_id, data))
                    result.rejected[image_id] = f"{entry['ErrorCode']}: {entry.get('ErrorMessage')}"
                else:
                    result.accepted.append(image_id)
                    result.rejected.pop(image_id, None)
                    result.positions.append((entry["ShardId"], int(entry["SequenceNumber"])))
            pending = retry
            if not pending:
                return
        for image_id, _ in pending:
            last = result.rejected[image_id]
            if last.startswith(THROUGHPUT):
                result.overloaded.append(image_id)
            result.rejected[image_id] = (
                f"kinesis rejected the record {MAX_SEND_ROUNDS} times: {last}"
            )


def _unsent(
    result: PublishResult, records: Sequence[tuple[str, bytes]], error: str, code: str | None
) -> None:
    """Records not sent because their call failed whole."""
    result.call_error = result.call_error or error
    result.refused = result.refused or code in REFUSED
    for image_id, _ in records:
        result.rejected.pop(image_id, None)
        result.unsent.append(image_id)
