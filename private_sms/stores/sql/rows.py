"""The SQL store's rows, read back as the domain's values (columns are named as fields are)."""

import dataclasses
from collections.abc import Mapping
from typing import Any

from private_sms.chats import Chat, MessageRecord, Part, Receipt, RelayJob


def _value(cls: type, row: Mapping[str, Any], **columns: str) -> Any:
    """Return a `cls` from `row`: each field from its column (`columns` names those named
    otherwise); a field with no column keeps its default."""
    found = {}
    for field in dataclasses.fields(cls):
        column = columns.get(field.name, field.name)
        if column in row:
            found[field.name] = row[column]
    return cls(**found)


def chat(row: Mapping[str, Any]) -> Chat:
    """Return the chat a `chats` row holds."""
    return _value(Chat, row)


def part(row: Mapping[str, Any]) -> Part:
    """Return the part of a long text a `parts` row holds."""
    return _value(Part, row, index="idx")


def receipt(row: Mapping[str, Any]) -> Receipt:
    """Return the delivery receipt a `receipts` row holds."""
    return _value(Receipt, row, message_id="vonage_message_id")


def message(row: Mapping[str, Any]) -> MessageRecord:
    """Return the log entry a `messages` row holds (its parts' ids are kept comma-separated)."""
    ids = row["vonage_message_ids"]
    return _value(MessageRecord, {**row, "vonage_message_ids": tuple(filter(None, ids.split(",")))})


def relay_job(row: Mapping[str, Any]) -> RelayJob:
    """Return the text waiting to be relayed that a `relay_queue` row holds."""
    return _value(RelayJob, row, held_until="lease_until")
