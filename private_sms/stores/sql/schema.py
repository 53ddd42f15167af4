"""The SQL store's tables and indexes (SQLAlchemy Core), for SQLite and PostgreSQL alike.

The database, not a Python lock, keeps a person to one active chat per virtual number: each
active chat holds two rows in `routes`, whose primary key is (number, participant), and a
partial unique index keeps two people to one active chat together.
"""

from datetime import UTC

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    literal_column,
    text,
)

from private_sms.chats import ACTIVE


class UtcDateTime(TypeDecorator):
    """A moment in UTC, kept without a zone (SQLite has none) and read back zone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=UTC)


# SQLite makes only INTEGER PRIMARY KEY columns count up by themselves.
Serial = BigInteger().with_variant(Integer, "sqlite")
ACTIVE_ONLY = {
    "sqlite_where": text(f"status = '{ACTIVE}'"),
    "postgresql_where": text(f"status = '{ACTIVE}'"),
}

metadata = MetaData()
chats = Table(
    "chats",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("number", String(15), nullable=False),
    Column("user_a", String(15), nullable=False, index=True),
    Column("user_b", String(15), nullable=False, index=True),
    # The two participants in a fixed order: a pair has one active chat at a time.
    Column("pair", String(31), nullable=False),
    Column("status", String(8), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_activity_at", UtcDateTime, nullable=False),
    # Counted with each log entry, in its transaction: a list of chats counts no rows.
    Column("message_count", Integer, nullable=False, default=0),
    # Its texts in the relay queue, counted by the statements that queue and settle them. On
    # PostgreSQL a statement that waited for the chat's row reads the count the other left,
    # where a look at the queue would see what was committed when the statement began.
    Column("relay_waiting", Integer, nullable=False, default=0, server_default=text("0")),
    Column("ended_at", UtcDateTime),
    Column("ended_reason", String(16)),
    Index("one_active_chat_per_pair", "pair", unique=True, **ACTIVE_ONLY),
    Index("active_chats_by_activity", "last_activity_at", **ACTIVE_ONLY),
)
# A literal, not a bound parameter: a planner that sees it can use the partial indexes.
IS_ACTIVE = chats.c.status == literal_column(f"'{ACTIVE}'")
routes = Table(
    "routes",
    metadata,
    Column("number", String(15), primary_key=True),
    Column("participant", String(15), primary_key=True),
    Column("chat_id", String(32), ForeignKey("chats.id"), nullable=False, index=True),
)
messages = Table(
    "messages",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("chat_id", String(32), ForeignKey("chats.id"), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("outcome", String(8), nullable=False),
    Column("inbound_message_id", String(64), nullable=False),
    Column("vonage_message_ids", Text, nullable=False),
    Column("detail", Text),
    Column("text", Text),
    Index("messages_of_a_chat", "chat_id", "seq"),
    # MESSAGE_RETENTION forgets the oldest entries.
    Index("messages_by_age", "at"),
)
# Vonage's id of each SMS part a logged text went out as: delivery receipts name these.
sent_parts = Table(
    "sent_parts",
    metadata,
    Column("message_seq", Serial, ForeignKey("messages.seq"), primary_key=True),
    Column("vonage_message_id", String(64), primary_key=True, index=True),
)
receipts = Table(
    "receipts",
    metadata,
    Column("vonage_message_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("err_code", String(16)),
    Column("at", UtcDateTime, nullable=False),
)
# One row a webhook (its number, sender and messageId) being dealt with (claimed), given up
# for a redelivery (released) or dealt with (done), with the chat it was routed to.
claims = Table(
    "claims",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("state", String(8), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("chat_id", String(32)),
    Index("claims_by_age", "at"),
)
# Parts of long texts: waiting (relayed_at empty) until the text is whole, then kept a while,
# without their bodies, so that a late copy of a part is known.
parts = Table(
    "parts",
    metadata,
    Column("sender", String(15), primary_key=True),
    Column("number", String(15), primary_key=True),
    Column("message_id", String(64), primary_key=True),
    Column("chat_id", String(32)),
    Column("ref", String(64), nullable=False),
    Column("total", Integer, nullable=False),
    Column("idx", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("relayed_at", UtcDateTime),
    Index("parts_of_a_text", "sender", "number", "ref", "total"),
    Index(
        "waiting_parts_by_age",
        "received_at",
        sqlite_where=text("relayed_at IS NULL"),
        postgresql_where=text("relayed_at IS NULL"),
    ),
)
# The relay queue: a text waits here, beside its log entry (`seq`), from the webhook's answer
# until it is settled; a chat's texts go in `seq` order. `lease_until`: a relay took it and
# holds it until then (after a crash, another takes it when the lease runs out).
relay_queue = Table(
    "relay_queue",
    metadata,
    Column("seq", Serial, ForeignKey("messages.seq"), primary_key=True, autoincrement=False),
    Column("chat_id", String(32), nullable=False),
    Column("number", String(15), nullable=False),
    Column("recipient", String(15), nullable=False),
    Column("text", Text, nullable=False),
    Column("inbound_message_id", String(64), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("tries", Integer, nullable=False),
    Column("next_try_at", UtcDateTime, nullable=False),
    Column("lease_until", UtcDateTime),
    Column("note", Text),
    Index("relay_queue_of_a_chat", "chat_id", "seq"),
)
# One row: the moment the next send may go, for every process that shares the store (SEND_RATE).
pacer = Table(
    "pacer",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("next_at", UtcDateTime, nullable=False),
)
# What the dry run sent each phone, for the console's phone simulator (rules.py bounds it).
# `message_ids`: one per SMS part, separated by spaces.
sent_texts = Table(
    "sent_texts",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("sender", String(15), nullable=False),
    Column("recipient", String(15), nullable=False),
    Column("text", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("message_ids", Text, nullable=False),
    Index("sent_texts_to_a_phone", "recipient", "seq"),
)
