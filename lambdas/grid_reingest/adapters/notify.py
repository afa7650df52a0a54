"""Where a pass's report goes: an SNS topic (the Notifier port)."""

from __future__ import annotations

from typing import Any

# SNS's limits: a subject of 100 characters, a message of 256 KiB.
SUBJECT_MAX = 100
MESSAGE_MAX = 256 * 1024 - 1024


class TopicNotifier:
    """Publishes to one SNS topic."""

    def __init__(self, client: Any, topic_arn: str) -> None:
        self._client = client
        self._topic = topic_arn

    def publish(self, subject: str, text: str) -> None:
        """One message; the subject and text cut to SNS's limits."""
        body = text.encode("utf-8")[:MESSAGE_MAX].decode("utf-8", "ignore")
        self._client.publish(TopicArn=self._topic, Subject=subject[:SUBJECT_MAX], Message=body)
