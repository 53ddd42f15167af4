"""The SQL chat store (SQLAlchemy 2 Core): SQLite on one host, PostgreSQL for several.

The database, not a Python lock, keeps a person to one active chat per virtual number: each
active chat holds two rows in `routes`, whose primary key is (number, participant), and a
partial unique index keeps two people to one active chat together. A process that loses a
race for a number gets an IntegrityError, and tries again on the numbers still free.
"""

import logging
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    TypeDecorator,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from chat_store import (
    ACTIVE,
    BUSY,
    CLAIMED,
    DONE,
    ENDED,
    EXPIRED,
    RELEASED,
    Chat,
    MessageRecord,
    Part,
    Receipt,
    check_part_fits,
    new_chat_id,
    no_free_number,
    pick_free_number,
)
from errors import StoreUnavailable

log = logging.getLogger(__name__)

# How long a query, a lock or a pooled connection is waited for before the request gets a 503.
DEFAULT_TIMEOUT_SECONDS = 5
# A key of PostgreSQL's advisory locks: workers that start together create the schema once.
SCHEMA_LOCK_KEY = 0x534D5350  # "SMSP"
# The class of the advisory locks that let one transaction at a time add a part to a long text.
PARTS_LOCK_CLASS = 0x50415254  # "PART"


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


def database_url(raw: str) -> URL:
    """Read a DATABASE_URL; `postgres://` and `postgresql://` mean PostgreSQL through psycopg 3.

    Raises ValueError with a sentence that says what is wrong (the password never shown).
    """
    url = make_url(raw)
    if url.drivername in ("postgres", "postgresql", "postgresql+psycopg"):
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        if url.database in (None, "", ":memory:"):
            raise ValueError(
                "names an in-memory SQLite database, which each connection would see empty: "
                "give a file, as in sqlite:///chats.db, or leave DATABASE_URL empty for the "
                "memory store"
            )
        return url.set(drivername="sqlite+pysqlite")
    raise ValueError(
        f"uses {url.drivername!r}: the service speaks sqlite:///path and "
        "postgresql+psycopg://user:password@host/database"
    )


class SqlChatStore:
    """Chats in an SQL database, shared by every process that is given the same URL.

    `pool_size` connections, one for each thread that serves requests (and two more for the
    background sweep and commands). Nothing waits longer than `timeout` seconds for a
    connection, a lock or a statement: it fails with `StoreUnavailable`, a 503.
    """

    def __init__(
        self, url: str | URL, *, pool_size: int = 32, timeout: int = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        url = database_url(str(url)) if isinstance(url, str) else url
        self.kind = "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"
        if self.kind == "sqlite":
            # How long setting up a connection may wait for a lock; after that, see _begin.
            connect_args = {"timeout": timeout}
        else:
            milliseconds = timeout * 1000
            limits = f"-c statement_timeout={milliseconds} -c lock_timeout={milliseconds}"
            options = " ".join(filter(None, [url.query.get("options"), limits]))
            url = url.update_query_dict({"options": options})
            connect_args = {"connect_timeout": timeout}
        # No ping before each use (a round trip for every query): a connection that a server
        # restart broke fails its query, which answers 503, and SQLAlchemy then replaces every
        # pooled connection at once, so a restart costs a worker one failed request.
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=2,
            pool_timeout=timeout,
            connect_args=connect_args,
        )
        self._insert = sqlite.insert if self.kind == "sqlite" else postgresql.insert
        if self.kind == "sqlite":
            _take_over_sqlite_transactions(engine, timeout)
        self._engine = engine
        # On SQLite a write transaction takes the write lock when it begins (BEGIN IMMEDIATE):
        # one that began as a reader could not become a writer once another process wrote.
        self._write_engine = engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")

    def create_schema(self) -> None:
        """Create the tables and indexes that are missing (several processes may do it at once).

        `claims` and `parts` of an earlier version (before claims and parts were kept per
        sender and number, with their chat) are made anew: they hold only what is in flight.
        """
        with self._write() as conn:
            if self.kind == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK_KEY)))
            found = inspect(conn)
            for table in (claims, parts):
                if found.has_table(table.name) and "chat_id" not in {
                    column["name"] for column in found.get_columns(table.name)
                }:
                    log.warning("Making the %s table anew, in its current shape", table.name)
                    table.drop(conn)
            metadata.create_all(conn)
            # create_all adds no index to a table that exists: add those added since.
            for table in metadata.sorted_tables:
                for index in table.indexes:
                    index.create(conn, checkfirst=True)

    def ping(self) -> None:
        """Raise `StoreUnavailable` unless a webhook's first write could begin in time.

        A write transaction that reads the claims: on SQLite it takes the write lock, and on
        PostgreSQL it waits for a lock on the claims; neither writes anything.
        """
        with self._write() as conn:
            conn.execute(select(claims.c.key).limit(1))

    def create_chat(self, pool: Sequence[str], user_a: str, user_b: str, now: datetime) -> Chat:
        """Start a chat on a pool number on which neither person has an active chat."""
        # Each loss of a race takes a number away, so the pool's size bounds the tries.
        for _ in range(len(pool) + 1):
            try:
                return self._try_create_chat(pool, user_a, user_b, now)
            except IntegrityError:
                log.debug("Lost a race for a pool number; trying again")
        raise no_free_number(user_a, user_b, len(pool))

    def _try_create_chat(
        self, pool: Sequence[str], user_a: str, user_b: str, now: datetime
    ) -> Chat:
        with self._write() as conn:
            taken = conn.execute(
                select(routes.c.number, routes.c.participant, routes.c.chat_id).where(
                    routes.c.participant.in_([user_a, user_b])
                )
            )
            values = {
                "id": new_chat_id(),
                "number": pick_free_number(pool, user_a, user_b, {(n, p): c for n, p, c in taken}),
                "user_a": user_a,
                "user_b": user_b,
                "pair": ":".join(sorted((user_a, user_b))),
                "status": ACTIVE,
                "created_at": now,
                "last_activity_at": now,
                "message_count": 0,
            }
            seq = conn.execute(insert(chats).values(values).returning(chats.c.seq)).scalar_one()
            conn.execute(
                insert(routes),
                [
                    {"number": values["number"], "participant": user, "chat_id": values["id"]}
                    for user in (user_a, user_b)
                ],
            )
        return _chat({**values, "seq": seq, "ended_at": None, "ended_reason": None})

    def delete_chat(self, chat_id: str) -> None:
        """Forget a chat entirely, as if never created (its intro texts failed)."""
        with self._write() as conn:
            conn.execute(delete(routes).where(routes.c.chat_id == chat_id))
            logged = select(messages.c.seq).where(messages.c.chat_id == chat_id)
            conn.execute(delete(sent_parts).where(sent_parts.c.message_seq.in_(logged)))
            conn.execute(delete(messages).where(messages.c.chat_id == chat_id))
            conn.execute(delete(chats).where(chats.c.id == chat_id))

    def find_active(self, number: str, participant: str) -> Chat | None:
        """Return the active chat `participant` has on the virtual `number`, if any."""
        with self._read() as conn:
            row = conn.execute(_active_on(number, participant)).mappings().first()
        return None if row is None else _chat(row)

    def find_chats(
        self, number: str, participant: str, start: datetime, end: datetime
    ) -> list[Chat]:
        """Return the chats of `participant` on `number` active at some moment in [start, end)."""
        with self._read() as conn:
            row = conn.execute(_active_on(number, participant)).mappings().first()
            # Most texts come in a chat that began before them: the chats before it on this
            # number ended before it began, so it is the only one (one primary-key lookup).
            if row is not None and row["created_at"] <= start:
                return [_chat(row)]
            rows = conn.execute(
                select(chats)
                .where(
                    chats.c.number == number,
                    or_(chats.c.user_a == participant, chats.c.user_b == participant),
                    chats.c.created_at < end,
                    or_(chats.c.ended_at.is_(None), chats.c.ended_at > start),
                )
                .order_by(chats.c.seq.desc())
            ).mappings()
            return [_chat(row) for row in rows]

    def get_chat(self, chat_id: str) -> Chat | None:
        """Return the chat with this id, active or ended."""
        with self._read() as conn:
            row = conn.execute(select(chats).where(chats.c.id == chat_id)).mappings().first()
        return None if row is None else _chat(row)

    def list_chats(
        self,
        *,
        status: str | None = ACTIVE,
        participant: str | None = None,
        number: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[Chat]:
        """Return chats newest first, filtered; `before` is the `seq` to continue below."""
        query = select(chats).order_by(chats.c.seq.desc()).limit(limit)
        if before is not None:
            query = query.where(chats.c.seq < before)
        if status is not None:
            query = query.where(chats.c.status == status)
        if participant is not None:
            query = query.where(or_(chats.c.user_a == participant, chats.c.user_b == participant))
        if number is not None:
            query = query.where(chats.c.number == number)
        with self._read() as conn:
            return [_chat(row) for row in conn.execute(query).mappings()]

    def end_chat(self, chat_id: str, reason: str, at: datetime) -> bool:
        """End an active chat; True if this call ended it (False: unknown or ended already)."""
        with self._write() as conn:
            ended = conn.execute(
                update(chats)
                .where(chats.c.id == chat_id, IS_ACTIVE)
                .values(status=ENDED, ended_at=at, ended_reason=reason)
            ).rowcount
            conn.execute(delete(routes).where(routes.c.chat_id == chat_id))
        return ended == 1

    def expire_idle(self, cutoff: datetime, ttl: timedelta) -> int:
        """End every active chat silent since before `cutoff`; return how many."""
        idle = select(chats.c.id).where(IS_ACTIVE, chats.c.last_activity_at < cutoff)
        # Most calls find nothing: look before taking SQLite's write lock.
        with self._read() as conn:
            if conn.execute(idle.limit(1)).first() is None:
                return 0
        with self._write() as conn:
            expired = conn.execute(
                update(chats)
                .where(IS_ACTIVE, chats.c.last_activity_at < cutoff)
                .values(status=ENDED, ended_reason=EXPIRED)
                .returning(chats.c.id, chats.c.last_activity_at)
            ).all()
            if expired:
                conn.execute(
                    update(chats)
                    .where(chats.c.id == bindparam("chat_id"))
                    .values(ended_at=bindparam("expired_at")),
                    [{"chat_id": c, "expired_at": last + ttl} for c, last in expired],
                )
                conn.execute(delete(routes).where(routes.c.chat_id.in_([c for c, _ in expired])))
        return len(expired)

    def record_message(self, record: MessageRecord, *, settles: str | None = None) -> None:
        """Add an entry to a chat's message log and count it as the chat's latest activity."""
        with self._write() as conn:
            if settles is not None:
                self._settle(conn, settles, record.at, record.chat_id)
            touched = conn.execute(
                update(chats)
                .where(chats.c.id == record.chat_id)
                .values(message_count=chats.c.message_count + 1, last_activity_at=record.at)
            ).rowcount
            if touched:
                seq = conn.execute(
                    insert(messages)
                    .values(
                        chat_id=record.chat_id,
                        direction=record.direction,
                        at=record.at,
                        outcome=record.outcome,
                        inbound_message_id=record.inbound_message_id,
                        vonage_message_ids=",".join(record.vonage_message_ids),
                        detail=record.detail,
                        text=record.text,
                    )
                    .returning(messages.c.seq)
                ).scalar_one()
                if record.vonage_message_ids:
                    conn.execute(
                        insert(sent_parts),
                        [
                            {"message_seq": seq, "vonage_message_id": message_id}
                            for message_id in dict.fromkeys(record.vonage_message_ids)
                        ],
                    )

    def list_messages(
        self, chat_id: str, *, limit: int = 50, after: int | None = None
    ) -> list[MessageRecord]:
        """Return a chat's message log oldest first; `after` is the `seq` to continue from."""
        query = (
            select(messages)
            .where(messages.c.chat_id == chat_id)
            .order_by(messages.c.seq)
            .limit(limit)
        )
        if after is not None:
            query = query.where(messages.c.seq > after)
        with self._read() as conn:
            records = [_message(row) for row in conn.execute(query).mappings()]
            ids = [i for record in records for i in record.vonage_message_ids]
            found = {}
            if ids:
                rows = conn.execute(select(receipts).where(receipts.c.vonage_message_id.in_(ids)))
                found = {row.vonage_message_id: _receipt(row) for row in rows}
        return [
            record.with_receipts(found[i] for i in record.vonage_message_ids if i in found)
            if found
            else record
            for record in records
        ]

    def record_receipt(self, receipt: Receipt) -> str | None:
        """Keep a delivery receipt with the logged text it is about; return that chat's id."""
        chat_of = (
            select(messages.c.chat_id)
            .join(sent_parts, sent_parts.c.message_seq == messages.c.seq)
            .where(sent_parts.c.vonage_message_id == receipt.message_id)
            .limit(1)
        )
        with self._write() as conn:
            chat_id = conn.execute(chat_of).scalar()
            if chat_id is None:
                return None
            earlier = conn.execute(
                select(receipts).where(receipts.c.vonage_message_id == receipt.message_id)
            ).first()
            if receipt.replaces(earlier and _receipt(earlier)):
                values = {"status": receipt.status, "err_code": receipt.err_code, "at": receipt.at}
                conn.execute(
                    self._insert(receipts)
                    .values(vonage_message_id=receipt.message_id, **values)
                    .on_conflict_do_update(index_elements=["vonage_message_id"], set_=values)
                )
        return chat_id

    def claim(
        self, key: str, now: datetime, lease: timedelta, chat_id: str | None = None
    ) -> tuple[str, str | None]:
        """Claim the webhook `key`; return the state and the chat it was routed to."""
        with self._write() as conn:
            new = conn.execute(
                self._insert(claims)
                .values(key=key, state=CLAIMED, at=now, chat_id=chat_id)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(claims.c.key)
            ).first()
            if new is not None:
                return CLAIMED, chat_id
            # Take a released claim, or one whose holder has had far longer than a relay takes.
            taken_over = conn.execute(
                update(claims)
                .where(
                    claims.c.key == key,
                    or_(
                        claims.c.state == RELEASED,
                        (claims.c.state == CLAIMED) & (claims.c.at <= now - lease),
                    ),
                )
                .values(state=CLAIMED, at=now)
                .returning(claims.c.chat_id)
            ).first()
            if taken_over is not None:
                return CLAIMED, taken_over.chat_id
            found = conn.execute(
                select(claims.c.state, claims.c.chat_id).where(claims.c.key == key)
            ).first()
        return (DONE if found.state == DONE else BUSY), found.chat_id

    def release(self, key: str) -> None:
        """Give up a claim that did not get done; a redelivery takes it, with its chat."""
        with self._write() as conn:
            conn.execute(
                update(claims)
                .where(claims.c.key == key, claims.c.state == CLAIMED)
                .values(state=RELEASED)
            )

    def settle(self, key: str, at: datetime) -> None:
        """Mark a claim done without a log entry."""
        with self._write() as conn:
            self._settle(conn, key, at, None)

    def _settle(self, conn: Connection, key: str, at: datetime, chat_id: str | None) -> None:
        done = {"state": DONE, "at": at}
        conn.execute(
            self._insert(claims)
            .values(key=key, chat_id=chat_id, **done)
            .on_conflict_do_update(index_elements=["key"], set_=done)
        )

    def add_part(self, part: Part) -> list[Part] | None:
        """Keep a part of a long text; return the parts of its text waiting so far."""
        this_part = (
            (parts.c.sender == part.sender)
            & (parts.c.number == part.number)
            & (parts.c.message_id == part.message_id)
        )
        with self._write() as conn:
            if self.kind == "postgresql":
                # Parts of one sender, arriving together, must not each miss the other, nor
                # together pass the bounds on what may wait.
                key = func.hashtext(part.sender)
                conn.execute(select(func.pg_advisory_xact_lock(PARTS_LOCK_CLASS, key)))
            # A copy counts as the part first kept, whatever its concat fields say.
            row = conn.execute(select(parts).where(this_part)).mappings().first()
            if row is not None and row["relayed_at"] is not None:
                return None
            kept = part if row is None else _part(row)
            waiting = self._waiting_parts_of(conn, kept.text_key)
            if row is None:
                of_sender = conn.execute(
                    select(func.count()).where(
                        parts.c.sender == part.sender, parts.c.relayed_at.is_(None)
                    )
                ).scalar_one()
                check_part_fits(part, waiting, of_sender)
                conn.execute(
                    insert(parts).values(
                        message_id=part.message_id,
                        sender=part.sender,
                        number=part.number,
                        chat_id=part.chat_id,
                        ref=part.ref,
                        total=part.total,
                        idx=part.index,
                        text=part.text,
                        received_at=part.received_at,
                    )
                )
                waiting.append(part)
            return waiting

    def _waiting_parts_of(self, conn: Connection, text_key: tuple) -> list[Part]:
        sender, number, ref, total = text_key
        rows = conn.execute(
            select(parts)
            .where(
                parts.c.sender == sender,
                parts.c.number == number,
                parts.c.ref == ref,
                parts.c.total == total,
                parts.c.relayed_at.is_(None),
            )
            .order_by(parts.c.received_at, parts.c.message_id)
        )
        return [_part(row) for row in rows.mappings()]

    def waiting_parts(self, received_before: datetime) -> list[list[Part]]:
        """Return the long texts still waiting whose first part came before that moment."""
        waiting = parts.c.relayed_at.is_(None)
        with self._read() as conn:
            old = conn.execute(
                select(parts.c.sender, parts.c.number, parts.c.ref, parts.c.total)
                .where(waiting, parts.c.received_at < received_before)
                .distinct()
            ).all()
            return [self._waiting_parts_of(conn, tuple(text_key)) for text_key in old]

    def relay_parts(self, parts_relayed: Sequence[Part], now: datetime) -> None:
        """Mark these parts relayed, their bodies forgotten: they and their copies wait no more."""
        with self._write() as conn:
            conn.execute(
                update(parts)
                .where(
                    parts.c.sender == bindparam("b_sender"),
                    parts.c.number == bindparam("b_number"),
                    parts.c.message_id == bindparam("b_message_id"),
                )
                # Only the key is kept, to know a late copy: no body.
                .values(relayed_at=now, text=""),
                [
                    {"b_sender": p.sender, "b_number": p.number, "b_message_id": p.message_id}
                    for p in parts_relayed
                ],
            )

    def purge(self, before: datetime, *, messages_before: datetime | None = None) -> None:
        """Forget claims and relayed parts older than `before`, and old log entries."""
        with self._write() as conn:
            conn.execute(delete(claims).where(claims.c.at < before))
            conn.execute(delete(parts).where(parts.c.relayed_at < before))
            if messages_before is None:
                return
            old = select(messages.c.seq).where(messages.c.at < messages_before)
            parts_of_old = select(sent_parts.c.vonage_message_id).where(
                sent_parts.c.message_seq.in_(old)
            )
            conn.execute(delete(receipts).where(receipts.c.vonage_message_id.in_(parts_of_old)))
            conn.execute(delete(sent_parts).where(sent_parts.c.message_seq.in_(old)))
            conn.execute(delete(messages).where(messages.c.at < messages_before))

    def close(self) -> None:
        """Close the pooled connections."""
        self._engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with _unavailable_as_503(), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with _unavailable_as_503(), self._write_engine.begin() as conn:
            yield conn


@contextmanager
def _unavailable_as_503() -> Iterator[None]:
    """Turn a database that cannot answer in time into `StoreUnavailable`; let constraint
    errors through."""
    try:
        yield
    except IntegrityError:
        raise
    except (DBAPIError, PoolTimeout) as error:
        cause = error.orig if isinstance(error, DBAPIError) else error
        log.error("The chat store did not answer: %s", type(cause).__name__)
        raise StoreUnavailable(
            "The chat store (the database) cannot be reached right now; try again shortly."
        ) from error


def _take_over_sqlite_transactions(engine: Engine, timeout: float) -> None:
    """Let SQLAlchemy, not Python's sqlite3 module, begin SQLite's transactions (SQLAlchemy docs).

    sqlite3 would begin one only before the first write, so reads would not see one snapshot
    and a write transaction could not take the write lock up front. A writer that finds the
    lock taken waits for it here, in Python, for up to `timeout` seconds: SQLite's own busy
    handler would sleep inside C, where no other request of a gevent worker could run.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never wait for the writer. FULL: a committed chat survives a power cut.
        # Then no busy wait in C: in WAL mode only BEGIN IMMEDIATE waits for another writer.
        pragmas = ("journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON")
        for pragma in (*pragmas, "busy_timeout = 0"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        statement = conn.get_execution_options().get("sqlite_begin", "BEGIN")
        deadline = time.monotonic() + timeout
        pause = 0.001
        while True:
            try:
                conn.exec_driver_sql(statement)
                return
            except OperationalError as error:
                left = deadline - time.monotonic()
                if "locked" not in str(error.orig) or left <= 0:
                    raise
            # Jittered, doubling up to 50 ms: writers that wait together do not wake together.
            time.sleep(min(left, pause * random.uniform(0.5, 1.5)))
            pause = min(pause * 2, 0.05)


def _active_on(number: str, participant: str) -> Select:
    """The active chat of `participant` on `number`: one lookup of the routes' primary key."""
    return (
        select(chats)
        .join(routes, routes.c.chat_id == chats.c.id)
        .where(routes.c.number == number, routes.c.participant == participant)
    )


def _chat(row) -> Chat:
    return Chat(
        id=row["id"],
        number=row["number"],
        user_a=row["user_a"],
        user_b=row["user_b"],
        created_at=row["created_at"],
        last_activity_at=row["last_activity_at"],
        message_count=row["message_count"],
        status=row["status"],
        ended_at=row["ended_at"],
        ended_reason=row["ended_reason"],
        seq=row["seq"],
    )


def _receipt(row) -> Receipt:
    return Receipt(
        message_id=row.vonage_message_id, status=row.status, err_code=row.err_code, at=row.at
    )


def _part(row) -> Part:
    return Part(
        message_id=row["message_id"],
        sender=row["sender"],
        number=row["number"],
        chat_id=row["chat_id"],
        ref=row["ref"],
        total=row["total"],
        index=row["idx"],
        text=row["text"],
        received_at=row["received_at"],
    )


def _message(row) -> MessageRecord:
    ids = row["vonage_message_ids"]
    return MessageRecord(
        chat_id=row["chat_id"],
        direction=row["direction"],
        at=row["at"],
        outcome=row["outcome"],
        inbound_message_id=row["inbound_message_id"],
        vonage_message_ids=tuple(ids.split(",")) if ids else (),
        detail=row["detail"],
        text=row["text"],
        seq=row["seq"],
    )
