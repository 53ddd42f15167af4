"""The SQL chat store: SQLite on one host, PostgreSQL for several.

Over 300 lines, as one class: each method is one transaction of the interface in
`stores/base.py`, and they share its connections; the tables are in schema.py, how it talks
to the database in engine.py, its rows read back in rows.py.

A process that loses a race for a number gets an IntegrityError from the database, and
tries again on the numbers still free.
"""

import dataclasses
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import (
    Connection,
    bindparam,
    case,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError

from private_sms import chats as domain
from private_sms.chats import (
    RETRYING,
    SENDING,
    Chat,
    ChatQuery,
    MessageRecord,
    Part,
    Receipt,
    RelayJob,
)
from private_sms.errors import StoreUnavailable
from private_sms.stores.base import DONE, ChatStore, Queued, Route
from private_sms.stores.rules import (
    SENT_IN_ALL,
    SENT_PER_PHONE,
    check_part_fits,
    no_free_number,
    pick_free_number,
)
from private_sms.stores.sql import rows
from private_sms.stores.sql.direct import DirectStatement
from private_sms.stores.sql.engine import (
    DEFAULT_TIMEOUT_SECONDS,
    UNAVAILABLE,
    make_engine,
    unavailable_as_503,
)
from private_sms.stores.sql.schema import (
    IS_ACTIVE,
    chats,
    claims,
    messages,
    metadata,
    pacer,
    parts,
    receipts,
    relay_queue,
    routes,
    sent_parts,
    sent_texts,
)
from private_sms.stores.sql.statements import (
    ACTIVE_ON,
    CHATS_AROUND,
    CLAIM,
    COUNT,
    COUNT_QUEUED,
    DUE,
    ENQUEUE,
    ENQUEUE_ROUTED,
    FINISH,
    FINISH_AND_TAKE,
    LOG,
    QUEUE,
    TAKE,
    arguments,
)
from private_sms.stores.sql.url import database_url

log = logging.getLogger(__name__)

# A key of PostgreSQL's advisory locks: workers that start together create the schema once.
SCHEMA_LOCK_KEY = 0x534D5350  # "SMSP"
# A database made before chats counted their texts in the relay queue gains the column.
ADD_RELAY_WAITING = "ALTER TABLE chats ADD COLUMN relay_waiting INTEGER NOT NULL DEFAULT 0"
# The class of the advisory locks that let one transaction at a time add a part to a long text.
PARTS_LOCK_CLASS = 0x50415254  # "PART"


class SqlChatStore(ChatStore):
    """Chats in an SQL database, shared by every process that is given the same URL.

    Nothing waits longer than `timeout` seconds for a connection, a lock or a statement: it
    fails with `StoreUnavailable`, a 503 (engine.py).
    """

    def __init__(
        self, url: str | URL, *, pool_size: int = 32, timeout: int = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        url = database_url(str(url)) if isinstance(url, str) else url
        self.kind = "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"
        # On PostgreSQL each round trip to the server costs the service more CPU than the
        # statement costs the server: a read, and a write made of one statement, go with no
        # transaction to begin and end (each statement is atomic, and sees what was
        # committed when it began, as in a transaction of READ COMMITTED, PostgreSQL's default).
        # Connections are kept so, and switched only for the writes of several statements.
        engine = make_engine(
            url, pool_size=pool_size, timeout=timeout, autocommit=self.kind == "postgresql"
        )
        self._insert = sqlite.insert if self.kind == "sqlite" else postgresql.insert
        # PostgreSQL's statements on the path of every text, run by psycopg itself (direct.py).
        self._direct = (
            {}
            if self.kind == "sqlite"
            else {s: DirectStatement(s, engine.dialect) for s in (ENQUEUE_ROUTED, FINISH_AND_TAKE)}
        )
        self._engine = engine
        # On SQLite a write transaction takes the write lock when it begins (BEGIN IMMEDIATE):
        # one that began as a reader could not become a writer once another process wrote.
        self._write_engine = (
            engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            if self.kind == "sqlite"
            else engine.execution_options(isolation_level="READ COMMITTED")
        )
        # SQLite has one writer at a time: this process's writers take turns here, where a
        # waiter sleeps until its turn, rather than each polling the database's lock (they
        # lost it to one another, and to other processes, for longer than `timeout`).
        self._timeout = timeout
        self._writer = threading.RLock() if self.kind == "sqlite" else None

    def create_schema(self) -> None:
        """Create the tables and indexes that are missing (several processes may do it at once).

        `claims` and `parts` of an earlier version (before claims and parts were kept per
        sender and number, with their chat) are made anew: they hold only what is in flight.
        `chats` of a version before it counted each chat's texts in the relay queue gains the
        count.
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
            uncounted = found.has_table(chats.name) and "relay_waiting" not in {
                column["name"] for column in found.get_columns(chats.name)
            }
            metadata.create_all(conn)
            if uncounted:
                log.warning("Adding the relay_waiting column to the chats table")
                conn.execute(text(ADD_RELAY_WAITING))
                _count_waiting(conn, chats.c.id.in_(select(relay_queue.c.chat_id)))
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
                "id": domain.new_chat_id(),
                "number": pick_free_number(pool, user_a, user_b, {(n, p): c for n, p, c in taken}),
                "user_a": user_a,
                "user_b": user_b,
                "pair": ":".join(sorted((user_a, user_b))),
                "status": domain.ACTIVE,
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
        return rows.chat({**values, "seq": seq, "ended_at": None, "ended_reason": None})

    def delete_chat(self, chat_id: str) -> None:
        with self._write() as conn:
            conn.execute(delete(routes).where(routes.c.chat_id == chat_id))
            conn.execute(delete(relay_queue).where(relay_queue.c.chat_id == chat_id))
            logged = select(messages.c.seq).where(messages.c.chat_id == chat_id)
            conn.execute(delete(sent_parts).where(sent_parts.c.message_seq.in_(logged)))
            conn.execute(delete(messages).where(messages.c.chat_id == chat_id))
            conn.execute(delete(chats).where(chats.c.id == chat_id))

    def find_active(self, number: str, participant: str) -> Chat | None:
        with self._read() as conn:
            row = (
                conn.execute(ACTIVE_ON, arguments(number=number, participant=participant))
                .mappings()
                .first()
            )
        return None if row is None else rows.chat(row)

    def find_chats(
        self, number: str, participant: str, start: datetime, end: datetime
    ) -> list[Chat]:
        with self._read() as conn:
            row = (
                conn.execute(ACTIVE_ON, arguments(number=number, participant=participant))
                .mappings()
                .first()
            )
            # Most texts come in a chat that began before them: the chats before it on this
            # number ended before it began, so it is the only one (one primary-key lookup).
            if row is not None and row["created_at"] <= start:
                return [rows.chat(row)]
            found = conn.execute(
                CHATS_AROUND,
                arguments(number=number, participant=participant, start=start, end=end),
            ).mappings()
            return [rows.chat(row) for row in found]

    def get_chat(self, chat_id: str) -> Chat | None:
        with self._read() as conn:
            row = conn.execute(select(chats).where(chats.c.id == chat_id)).mappings().first()
        return None if row is None else rows.chat(row)

    def list_chats(self, query: ChatQuery) -> list[Chat]:
        found = select(chats).order_by(chats.c.seq.desc()).limit(query.limit)
        if query.before is not None:
            found = found.where(chats.c.seq < query.before)
        if query.status is not None:
            found = found.where(chats.c.status == query.status)
        if query.participant is not None:
            who = query.participant
            found = found.where(or_(chats.c.user_a == who, chats.c.user_b == who))
        if query.number is not None:
            found = found.where(chats.c.number == query.number)
        with self._read() as conn:
            return [rows.chat(row) for row in conn.execute(found).mappings()]

    def end_chat(self, chat_id: str, reason: str, at: datetime) -> bool:
        with self._write() as conn:
            ended = conn.execute(
                update(chats)
                .where(chats.c.id == chat_id, IS_ACTIVE)
                .values(status=domain.ENDED, ended_at=at, ended_reason=reason)
            ).rowcount
            conn.execute(delete(routes).where(routes.c.chat_id == chat_id))
        return ended == 1

    def expire_idle(self, cutoff: datetime, ttl: timedelta) -> int:
        idle = select(chats.c.id).where(IS_ACTIVE, chats.c.last_activity_at < cutoff)
        # Most calls find nothing: look before taking SQLite's write lock.
        with self._read() as conn:
            if conn.execute(idle.limit(1)).first() is None:
                return 0
        with self._write() as conn:
            expired = conn.execute(
                update(chats)
                .where(IS_ACTIVE, chats.c.last_activity_at < cutoff)
                .values(status=domain.ENDED, ended_reason=domain.EXPIRED)
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
        with self._write() as conn:
            if settles is not None:
                self._settle(conn, settles, record.at, record.chat_id)
            self._log(conn, record)

    def _log(self, conn: Connection, record: MessageRecord) -> int | None:
        values = arguments(**_logged(record))
        if not conn.execute(COUNT, values).rowcount:
            return None
        seq = conn.execute(LOG, values).scalar_one()
        if record.vonage_message_ids:
            conn.execute(
                insert(sent_parts),
                [
                    {"message_seq": seq, "vonage_message_id": message_id}
                    for message_id in dict.fromkeys(record.vonage_message_ids)
                ],
            )
        return seq

    def list_messages(
        self, chat_id: str, *, limit: int = 50, after: int | None = None
    ) -> list[MessageRecord]:
        query = (
            select(
                messages.c.chat_id,
                messages.c.direction,
                messages.c.at,
                # A text a relay holds is being sent (it stays queued or retrying in its row).
                case(
                    (relay_queue.c.lease_until.is_not(None), SENDING), else_=messages.c.outcome
                ).label("outcome"),
                messages.c.inbound_message_id,
                messages.c.vonage_message_ids,
                messages.c.detail,
                messages.c.text,
                messages.c.seq,
                func.coalesce(relay_queue.c.tries, 0).label("tries"),
                relay_queue.c.next_try_at,
            )
            .select_from(messages.outerjoin(relay_queue, relay_queue.c.seq == messages.c.seq))
            .where(messages.c.chat_id == chat_id)
            .order_by(messages.c.seq)
            .limit(limit)
        )
        if after is not None:
            query = query.where(messages.c.seq > after)
        with self._read() as conn:
            records = [rows.message(row) for row in conn.execute(query).mappings()]
            ids = [i for record in records for i in record.vonage_message_ids]
            found = {}
            if ids:
                kept = conn.execute(select(receipts).where(receipts.c.vonage_message_id.in_(ids)))
                found = {row["vonage_message_id"]: rows.receipt(row) for row in kept.mappings()}
        return [
            record.with_receipts(found[i] for i in record.vonage_message_ids if i in found)
            if found
            else record
            for record in records
        ]

    def record_receipt(self, receipt: Receipt) -> str | None:
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
            earlier = (
                conn.execute(
                    select(receipts).where(receipts.c.vonage_message_id == receipt.message_id)
                )
                .mappings()
                .first()
            )
            if receipt.replaces(earlier and rows.receipt(earlier)):
                values = {"status": receipt.status, "err_code": receipt.err_code, "at": receipt.at}
                conn.execute(
                    self._insert(receipts)
                    .values(vonage_message_id=receipt.message_id, **values)
                    .on_conflict_do_update(index_elements=["vonage_message_id"], set_=values)
                )
        return chat_id

    def enqueue(
        self,
        key: str,
        record: MessageRecord,
        job: RelayJob | None,
        *,
        hold_until: datetime | None = None,
    ) -> Queued | None:
        if self.kind == "postgresql":
            return self._enqueue_in_one_statement(key, record, job, hold_until)
        with self._write() as conn:
            if conn.execute(CLAIM, arguments(key=key, **_logged(record))).first() is None:
                return None
            if job is None:
                seq = self._log(conn, record)
                return None if seq is None else Queued(seq)
            values = arguments(**_logged(record))
            waiting = conn.execute(COUNT_QUEUED, values).scalar()
            if waiting is None:
                return None
            seq = conn.execute(LOG, values).scalar_one()
            held = hold_until is not None and waiting == 1
            queued = _queued(job, hold_until if held else None)
            conn.execute(QUEUE, arguments(seq=seq, **queued, relay_text=job.text))
            return Queued(seq, held)

    def _enqueue_in_one_statement(
        self, key: str, record: MessageRecord, job: RelayJob | None, hold_until: datetime | None
    ) -> Queued | None:
        values = {"key": key, **_logged(record)}
        if job is not None:
            # The log's `text` is the body kept (None unless bodies are); the queue's is sent.
            values.update(_queued(job, None), relay_text=job.text, text=record.text)
            values["hold_until"] = hold_until
        with self._one_statement() as conn:
            seq, *held = conn.execute(ENQUEUE[job is not None], arguments(**values)).one()
        return None if seq is None else Queued(seq, bool(held and held[0]))

    def enqueue_routed(
        self,
        route: Route,
        key: str,
        record: MessageRecord,
        job: RelayJob,
        *,
        hold_until: datetime | None = None,
    ) -> tuple[RelayJob, Queued | None] | None:
        if self.kind != "postgresql":
            return super().enqueue_routed(route, key, record, job, hold_until=hold_until)
        values = {
            "key": key,
            "sender": route.sender,
            "since": route.since,
            "idle_before": route.idle_before,
            **_logged(record),
            **_queued(job, None),
            "relay_text": job.text,
            "text": record.text,
            "hold_until": hold_until,
        }
        with self._one_statement() as conn:
            found = self._direct[ENQUEUE_ROUTED].first(conn, arguments(**values))
        if found["chat_id"] is None:
            return None
        job = dataclasses.replace(job, chat_id=found["chat_id"], recipient=found["recipient"] or "")
        return job, None if found["seq"] is None else Queued(found["seq"], bool(found["held"]))

    def next_relay(self, now: datetime, lease: timedelta) -> RelayJob | None:
        if self.kind == "sqlite":
            # Most looks of an idle worker find nothing: look before taking the write lock.
            with self._read() as conn:
                if conn.execute(DUE, arguments(now=now)).first() is None:
                    return None
        # One statement takes the text: while its lease runs, the log shows it as sending.
        with self._one_statement() as conn:
            row = conn.execute(TAKE[self.kind], arguments(now=now, lease_until=now + lease))
            row = row.mappings().first()
        return None if row is None else rows.relay_job(row)

    def finish_relay(
        self,
        seq: int,
        outcome: str,
        *,
        message_ids: Sequence[str] = (),
        detail: str | None = None,
    ) -> None:
        if self.kind == "postgresql":
            with self._one_statement() as conn:
                conn.execute(FINISH, _settling(seq, outcome, message_ids, detail))
            return
        logged = _settled(outcome, message_ids, detail)
        ids = list(dict.fromkeys(message_ids))
        with self._write() as conn:
            gone = delete(relay_queue).where(relay_queue.c.seq == seq)
            chat_id = conn.execute(gone.returning(relay_queue.c.chat_id)).scalar()
            if chat_id is None:
                return
            conn.execute(update(messages).where(messages.c.seq == seq).values(**logged))
            if ids:
                conn.execute(
                    insert(sent_parts), [{"message_seq": seq, "vonage_message_id": i} for i in ids]
                )
            conn.execute(
                update(chats)
                .where(chats.c.id == chat_id)
                .values(relay_waiting=chats.c.relay_waiting - 1)
            )

    def finish_and_take(
        self,
        seq: int,
        outcome: str,
        *,
        message_ids: Sequence[str] = (),
        detail: str | None = None,
        now: datetime,
        lease: timedelta,
    ) -> RelayJob | None:
        if self.kind != "postgresql":
            return super().finish_and_take(
                seq, outcome, message_ids=message_ids, detail=detail, now=now, lease=lease
            )
        values = _settling(seq, outcome, message_ids, detail)
        values.update(arguments(now=now, lease_until=now + lease))
        with self._one_statement() as conn:
            row = self._direct[FINISH_AND_TAKE].first(conn, values)
        return None if row is None else rows.relay_job(row)

    def retry_relay(self, seq: int, next_try_at: datetime, detail: str) -> None:
        with self._write() as conn:
            conn.execute(
                update(relay_queue)
                .where(relay_queue.c.seq == seq)
                .values(lease_until=None, next_try_at=next_try_at)
            )
            conn.execute(
                update(messages)
                .where(messages.c.seq == seq)
                .values(outcome=RETRYING, detail=detail)
            )

    def queue_state(self) -> tuple[int, datetime | None]:
        with self._read() as conn:
            depth, oldest = conn.execute(
                select(func.count(), func.min(relay_queue.c.received_at))
            ).one()
        return depth, oldest

    def keep_sent(self, sent: domain.SentText) -> None:
        with self._write() as conn:
            seq = conn.execute(
                insert(sent_texts)
                .values(
                    sender=sent.sender,
                    recipient=sent.recipient,
                    text=sent.text,
                    at=sent.at,
                    message_ids=" ".join(sent.message_ids),
                )
                .returning(sent_texts.c.seq)
            ).scalar_one()
            # The phone's latest only, of the latest in all: rows older than those go.
            oldest_kept = (
                select(sent_texts.c.seq)
                .where(sent_texts.c.recipient == sent.recipient)
                .order_by(sent_texts.c.seq.desc())
                .offset(SENT_PER_PHONE - 1)
                .limit(1)
                .scalar_subquery()
            )
            conn.execute(
                delete(sent_texts).where(
                    or_(
                        (sent_texts.c.recipient == sent.recipient)
                        & (sent_texts.c.seq < oldest_kept),
                        sent_texts.c.seq <= seq - SENT_IN_ALL,
                    )
                )
            )

    def sent_to(self, recipient: str) -> list[domain.SentText]:
        with self._read() as conn:
            found = conn.execute(
                select(sent_texts)
                .where(sent_texts.c.recipient == recipient)
                .order_by(sent_texts.c.seq.desc())
                .limit(SENT_PER_PHONE)
            ).all()
        return [
            domain.SentText(
                sender=row.sender,
                recipient=row.recipient,
                text=row.text,
                at=row.at,
                message_ids=tuple(row.message_ids.split()),
            )
            for row in reversed(found)
        ]

    def reserve_send(self, now: datetime, interval: timedelta, bound: timedelta) -> datetime | None:
        with self._write() as conn:
            next_at = self._next_send(conn, now)
            slot = max(next_at, now)
            if slot > now + bound:
                return None
            conn.execute(update(pacer).where(pacer.c.id == 1).values(next_at=slot + interval))
        return slot

    def delay_sends(self, until: datetime) -> None:
        with self._write() as conn:
            if self._next_send(conn, until) < until:
                conn.execute(update(pacer).where(pacer.c.id == 1).values(next_at=until))

    def _next_send(self, conn: Connection, now: datetime) -> datetime:
        """The pacer's moment, its row locked for this transaction (made if missing)."""
        conn.execute(
            self._insert(pacer)
            .values(id=1, next_at=now)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        found = select(pacer.c.next_at).where(pacer.c.id == 1)
        if self.kind == "postgresql":
            found = found.with_for_update()
        return conn.execute(found).scalar_one()

    def settle(self, key: str, at: datetime) -> None:
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
            kept = part if row is None else rows.part(row)
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
        found = conn.execute(
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
        return [rows.part(row) for row in found.mappings()]

    def waiting_parts(self, received_before: datetime) -> list[list[Part]]:
        waiting = parts.c.relayed_at.is_(None)
        with self._read() as conn:
            old = conn.execute(
                select(parts.c.sender, parts.c.number, parts.c.ref, parts.c.total)
                .where(waiting, parts.c.received_at < received_before)
                .distinct()
            ).all()
            return [self._waiting_parts_of(conn, tuple(text_key)) for text_key in old]

    def relay_parts(self, parts_relayed: Sequence[Part], now: datetime) -> None:
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
        with self._write() as conn:
            conn.execute(delete(claims).where(claims.c.at < before))
            conn.execute(delete(parts).where(parts.c.relayed_at < before))
            if messages_before is None:
                return
            old = select(messages.c.seq).where(messages.c.at < messages_before)
            if conn.execute(delete(relay_queue).where(relay_queue.c.seq.in_(old))).rowcount:
                _count_waiting(conn, chats.c.relay_waiting > 0)
            parts_of_old = select(sent_parts.c.vonage_message_id).where(
                sent_parts.c.message_seq.in_(old)
            )
            conn.execute(delete(receipts).where(receipts.c.vonage_message_id.in_(parts_of_old)))
            conn.execute(delete(sent_parts).where(sent_parts.c.message_seq.in_(old)))
            conn.execute(delete(messages).where(messages.c.at < messages_before))

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with unavailable_as_503(), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _one_statement(self) -> Iterator[Connection]:
        """A connection for one statement that writes: on PostgreSQL, one round trip."""
        if self.kind == "sqlite":
            with self._write() as conn:
                yield conn
        else:
            with self._read() as conn:
                yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._writers_turn(), unavailable_as_503(), self._write_engine.begin() as conn:
            yield conn

    @contextmanager
    def _writers_turn(self) -> Iterator[None]:
        """On SQLite, wait (up to `timeout`) until no other writer of this process writes."""
        if self._writer is None:
            yield
            return
        if not self._writer.acquire(timeout=self._timeout):
            log.error("The chat store did not answer: this process's writers waited too long")
            raise StoreUnavailable(UNAVAILABLE)
        try:
            yield
        finally:
            self._writer.release()


def _count_waiting(conn: Connection, where) -> None:
    """Count anew the texts in the relay queue of the chats `where` picks."""
    in_queue = select(func.count()).where(relay_queue.c.chat_id == chats.c.id).scalar_subquery()
    conn.execute(update(chats).where(where).values(relay_waiting=in_queue))


def _settled(outcome: str, message_ids: Sequence[str], detail: str | None) -> dict:
    """The columns of a settled text's `messages` row."""
    return {"outcome": outcome, "vonage_message_ids": ",".join(message_ids), "detail": detail}


def _settling(seq: int, outcome: str, message_ids: Sequence[str], detail: str | None) -> dict:
    """The values of PostgreSQL's statement that settles text `seq` (FINISH and its kin):
    each SMS part's id once."""
    ids = list(dict.fromkeys(message_ids))
    return arguments(seq=seq, message_ids=ids, **_settled(outcome, message_ids, detail))


def _logged(record: MessageRecord) -> dict:
    """The columns of a `messages` row for `record` (its seq is the database's)."""
    return {
        "chat_id": record.chat_id,
        "direction": record.direction,
        "at": record.at,
        "outcome": record.outcome,
        "inbound_message_id": record.inbound_message_id,
        "vonage_message_ids": ",".join(record.vonage_message_ids),
        "detail": record.detail,
        "text": record.text,
    }


def _queued(job: RelayJob, held_until: datetime | None) -> dict:
    """The columns of a `relay_queue` row for `job`, but its seq (its log entry's); taken
    already, as `next_relay` takes a text, when `held_until` is given."""
    return {
        "chat_id": job.chat_id,
        "number": job.number,
        "recipient": job.recipient,
        "text": job.text,
        "inbound_message_id": job.inbound_message_id,
        "received_at": job.received_at,
        "tries": 0 if held_until is None else 1,
        "next_try_at": job.received_at,
        "lease_until": held_until,
        "note": job.note,
    }
