"""SQS adapter: batched sends, and receive/delete for the local pump."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from upflow.aws.telemetry import traced

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class SendFailed(Exception):
    pass


class Queue:
    def __init__(self, client: SQSClient, name: str) -> None:
        self._client = client
        self.name = name
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self._client.get_queue_url(QueueName=self.name)["QueueUrl"]
        return self._url

    @traced
    def send_json(self, bodies: Sequence[Any]) -> None:
        """Send each body as a JSON message, ten per call (SQS's batch limit)."""
        for start in range(0, len(bodies), 10):
            batch = bodies[start : start + 10]
            entries: list[Any] = [
                {"Id": str(index), "MessageBody": json.dumps(body, sort_keys=True)}
                for index, body in enumerate(batch)
            ]
            for _attempt in range(5):
                answer = self._client.send_message_batch(QueueUrl=self.url, Entries=entries)
                failed = {entry["Id"] for entry in answer.get("Failed", [])}
                if not failed:
                    break
                entries = [entry for entry in entries if entry["Id"] in failed]
            else:
                raise SendFailed(f"{len(entries)} messages to {self.name} were refused")

    def receive(self, max_messages: int, wait_seconds: int) -> list[dict[str, Any]]:
        answer = self._client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return [dict(message) for message in answer.get("Messages", [])]

    def delete(self, receipt_handles: Sequence[str]) -> None:
        for start in range(0, len(receipt_handles), 10):
            entries: list[Any] = [
                {"Id": str(index), "ReceiptHandle": handle}
                for index, handle in enumerate(receipt_handles[start : start + 10])
            ]
            self._client.delete_message_batch(QueueUrl=self.url, Entries=entries)

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        self._client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )

    def arn(self) -> str:
        attributes = self._client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        return attributes["Attributes"]["QueueArn"]

    def approximate_count(self) -> int:
        attributes = self._client.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


def queue_name_from_arn(arn: str) -> str:
    """``arn:aws:sqs:<region>:<account>:<name>`` → ``<name>``."""
    return arn.rsplit(":", 1)[-1]
