"""DynamoDB adapter: typed item access with conditional writes and transactions.

Items go in and come out as plain Python (``str``, ``int``/``Decimal``,
``dict``, ``list``, ``bool``); numbers come back as ``Decimal`` so money
stays exact end to end.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from upflow.aws.telemetry import traced

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Item = dict[str, Any]
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class ConditionFailed(Exception):
    """A conditional write found the item in another state."""


class TransactionCancelled(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = reasons


def _to_wire(value: Any) -> Any:
    if isinstance(value, float):  # floats are never exact: refuse them at the door
        raise TypeError("use Decimal or int for DynamoDB numbers, not float")
    return _serializer.serialize(value)


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _to_wire(value) for name, value in item.items()}


def deserialize(item: Mapping[str, Any]) -> Item:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


@dataclass
class Update:
    """An ``UpdateExpression`` built from SET/ADD/REMOVE parts and a condition.

    Attribute names are always aliased (``#n0``), so reserved words like
    ``status`` or ``size`` need no special care at call sites.
    """

    set: Mapping[str, Any] = field(default_factory=dict)
    add: Mapping[str, int | Decimal | AbstractSet[int]] = field(default_factory=dict)
    set_if_missing: Mapping[str, Any] = field(default_factory=dict)
    remove: Sequence[str] = ()
    condition: str | None = None
    condition_values: Mapping[str, Any] = field(default_factory=dict)
    condition_names: Mapping[str, str] = field(default_factory=dict)

    def render(self) -> dict[str, Any]:
        names: dict[str, str] = dict(self.condition_names)
        values: dict[str, Any] = {key: _to_wire(value) for key, value in self.condition_values.items()}
        set_parts: list[str] = []
        add_parts: list[str] = []
        counter = 0

        def alias(attr: str, value: Any) -> tuple[str, str]:
            nonlocal counter
            name_ref, value_ref = f"#u{counter}", f":u{counter}"
            counter += 1
            names[name_ref] = attr
            values[value_ref] = _to_wire(value)
            return name_ref, value_ref

        for attr, value in self.set.items():
            name_ref, value_ref = alias(attr, value)
            set_parts.append(f"{name_ref} = {value_ref}")
        for attr, value in self.set_if_missing.items():
            name_ref, value_ref = alias(attr, value)
            set_parts.append(f"{name_ref} = if_not_exists({name_ref}, {value_ref})")
        for attr, value in self.add.items():
            name_ref, value_ref = alias(attr, value)
            add_parts.append(f"{name_ref} {value_ref}")
        remove_parts: list[str] = []
        for attr in self.remove:
            name_ref = f"#u{counter}"
            counter += 1
            names[name_ref] = attr
            remove_parts.append(name_ref)
        clauses = []
        if set_parts:
            clauses.append("SET " + ", ".join(set_parts))
        if add_parts:
            clauses.append("ADD " + ", ".join(add_parts))
        if remove_parts:
            clauses.append("REMOVE " + ", ".join(remove_parts))
        rendered: dict[str, Any] = {"UpdateExpression": " ".join(clauses)}
        if self.condition:
            rendered["ConditionExpression"] = self.condition
        if names:
            rendered["ExpressionAttributeNames"] = names
        if values:
            rendered["ExpressionAttributeValues"] = values
        return rendered


@dataclass(frozen=True)
class QueryPage:
    """One page of a query: its items, and the key to continue after (None: nothing more)."""

    items: list[Item]
    last_key: Item | None


class Table:
    """One DynamoDB table behind the low-level client."""

    def __init__(self, client: DynamoDBClient, name: str) -> None:
        self._client = client
        self.name = name

    @property
    def client(self) -> DynamoDBClient:
        return self._client

    def get(self, key: Mapping[str, Any], consistent: bool = True) -> Item | None:
        answer = self._client.get_item(TableName=self.name, Key=serialize(key), ConsistentRead=consistent)
        raw = answer.get("Item")
        return deserialize(raw) if raw else None

    @traced
    def put_new(self, item: Mapping[str, Any], key_attr: str) -> bool:
        """Put ``item`` unless an item with its key exists; False if it did."""
        try:
            self._client.put_item(
                TableName=self.name,
                Item=serialize(item),
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": key_attr},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    @traced
    def put(self, item: Mapping[str, Any]) -> None:
        """Unconditional put (idempotent writes of a fixed value)."""
        self._client.put_item(TableName=self.name, Item=serialize(item))

    @traced
    def delete(self, key: Mapping[str, Any]) -> None:
        self._client.delete_item(TableName=self.name, Key=serialize(key))

    @traced
    def update(self, key: Mapping[str, Any], update: Update) -> Item:
        """Apply ``update``; returns the item after it. Raises ``ConditionFailed``."""
        try:
            answer = self._client.update_item(
                TableName=self.name, Key=serialize(key), ReturnValues="ALL_NEW", **update.render()
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConditionFailed(str(key)) from error
            raise
        return deserialize(answer.get("Attributes", {}))

    def query(
        self,
        key_name: str,
        key_value: str,
        sort_name: str | None = None,
        sort_prefix: str | None = None,
        sort_between: tuple[str, str] | None = None,
        projection: Sequence[str] | None = None,
        consistent: bool = True,
    ) -> Iterator[Item]:
        """All items of one partition (optionally a sort-key prefix or range), all pages.

        ``consistent=False``: eventually consistent reads, half the read units (views that
        may lag a second, such as the chunk grid)."""
        names = {"#pk": key_name}
        values: dict[str, Any] = {":pk": _to_wire(key_value)}
        condition = "#pk = :pk"
        if sort_name and sort_prefix is not None:
            names["#sk"] = sort_name
            values[":prefix"] = _to_wire(sort_prefix)
            condition += " AND begins_with(#sk, :prefix)"
        elif sort_name and sort_between is not None:
            names["#sk"] = sort_name
            values[":lo"], values[":hi"] = _to_wire(sort_between[0]), _to_wire(sort_between[1])
            condition += " AND #sk BETWEEN :lo AND :hi"
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ConsistentRead": consistent,
        }
        if projection:
            for index, attr in enumerate(projection):
                names[f"#p{index}"] = attr
            kwargs["ProjectionExpression"] = ", ".join(f"#p{index}" for index in range(len(projection)))
        kwargs["ExpressionAttributeNames"] = names
        while True:
            page = self._client.query(**kwargs)
            for raw in page.get("Items", []):
                yield deserialize(raw)
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def query_page(
        self,
        key_name: str,
        key_value: str,
        *,
        limit: int,
        start_key: Mapping[str, Any] | None = None,
        projection: Sequence[str] | None = None,
    ) -> QueryPage:
        """One page of one partition, in sort-key order: at most ``limit`` items after ``start_key``.

        DynamoDB may answer fewer (a page stops at 1 MB) and still a ``last_key``;
        ``last_key`` is None only when the partition holds nothing beyond the page.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        names = {"#pk": key_name}
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeValues": {":pk": _to_wire(key_value)},
            "ConsistentRead": True,
            "Limit": limit,
        }
        if start_key is not None:
            kwargs["ExclusiveStartKey"] = serialize(start_key)
        if projection:
            for index, attr in enumerate(projection):
                names[f"#p{index}"] = attr
            kwargs["ProjectionExpression"] = ", ".join(f"#p{index}" for index in range(len(projection)))
        kwargs["ExpressionAttributeNames"] = names
        page = self._client.query(**kwargs)
        last = page.get("LastEvaluatedKey")
        return QueryPage(
            items=[deserialize(raw) for raw in page.get("Items", [])],
            last_key=deserialize(last) if last else None,
        )

    @traced
    def put_many(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Unconditional puts in batches of 25, retrying unprocessed items."""
        for start in range(0, len(items), 25):
            requests: list[Any] = [
                {"PutRequest": {"Item": serialize(item)}} for item in items[start : start + 25]
            ]
            pending: dict[str, Any] = {self.name: requests}
            while pending:
                answer = self._client.batch_write_item(RequestItems=pending)
                pending = dict(answer.get("UnprocessedItems") or {})

    # --- transaction pieces (combined by ``transact``) -----------------------
    def tx_update(self, key: Mapping[str, Any], update: Update) -> dict[str, Any]:
        return {"Update": {"TableName": self.name, "Key": serialize(key), **update.render()}}


@traced
def transact(client: DynamoDBClient, operations: Sequence[dict[str, Any]]) -> None:
    """All-or-nothing write of up to 100 operations (from ``Table.tx_*``).

    Raises ``TransactionCancelled`` with one reason code per operation
    (``"None"`` for those that were fine) so callers can tell *which*
    condition failed.
    """
    if not operations:
        return
    try:
        client.transact_write_items(TransactItems=list(operations))  # type: ignore[arg-type]
    except ClientError as error:
        if error.response["Error"]["Code"] != "TransactionCanceledException":
            raise
        raw = error.response.get("CancellationReasons") or []
        reasons = [str(reason.get("Code", "None")) for reason in raw]
        if not reasons:
            reasons = _reasons_from_message(str(error.response["Error"].get("Message", "")))
        raise TransactionCancelled(reasons) from error


def _reasons_from_message(message: str) -> list[str]:
    # e.g. "Transaction cancelled, please refer cancellation reasons for specific
    # reasons [None, ConditionalCheckFailed]"
    if "[" not in message:
        return []
    inner = message[message.rindex("[") + 1 : message.rindex("]")]
    return [part.strip() for part in inner.split(",")]
