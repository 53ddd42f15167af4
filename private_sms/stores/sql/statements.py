"""The statements on the path of every text, built once and run with their values.

Building a statement (SQLAlchemy's constructs, the key that finds its compiled form in the
cache) cost more CPU than running it: 4.3 ms for the statement that queues a text, against
its round trip to PostgreSQL. Each here takes its values by name (`bindparam`).
"""

from sqlalchemy import (
    ARRAY,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from private_sms.chats import A_TO_B, B_TO_A
from private_sms.stores.base import DONE
from private_sms.stores.sql.schema import (
    IS_ACTIVE,
    chats,
    claims,
    messages,
    relay_queue,
    routes,
    sent_parts,
)


def _value(column, name=None):
    """A value given by name (the column's own unless `name`), of the column's type."""
    return _named(name or column.name, type_=column.type)


def _named(name, **kw):
    # Each name ends in "_": an UPDATE given a value named as one of its table's columns
    # would set that column too.
    return bindparam(f"{name}_", **kw)


def arguments(**values) -> dict:
    """The values for a statement here, by the names it gives them."""
    return {f"{name}_": value for name, value in values.items()}


# The active chat of `participant` on `number`: one lookup of the routes' primary key.
ACTIVE_ON = (
    select(chats)
    .join(routes, routes.c.chat_id == chats.c.id)
    .where(routes.c.number == _named("number"), routes.c.participant == _named("participant"))
)

# The chats `participant` had on `number` between `start` and `end`, newest first.
CHATS_AROUND = (
    select(chats)
    .where(
        chats.c.number == _named("number"),
        or_(chats.c.user_a == _named("participant"), chats.c.user_b == _named("participant")),
        chats.c.created_at < _value(chats.c.created_at, "end"),
        or_(chats.c.ended_at.is_(None), chats.c.ended_at > _value(chats.c.ended_at, "start")),
    )
    .order_by(chats.c.seq.desc())
)

_earlier = relay_queue.alias("earlier")


def _due(*, settling: bool = False):
    """The first text due (`now`) that no relay holds, and that no text of its chat is ahead
    of. `settling`: in the statement that settles text `seq`, which it still sees (each part
    of a statement sees what was committed when it began), and which holds nothing back."""
    ahead = [_earlier.c.chat_id == relay_queue.c.chat_id, _earlier.c.seq < relay_queue.c.seq]
    if settling:
        ahead.append(_earlier.c.seq != _named("seq"))
    return (
        select(relay_queue.c.seq)
        .where(
            relay_queue.c.next_try_at <= _value(relay_queue.c.next_try_at, "now"),
            or_(
                relay_queue.c.lease_until.is_(None),
                relay_queue.c.lease_until <= _value(relay_queue.c.lease_until, "now"),
            ),
            ~exists().where(*ahead),
            *([relay_queue.c.seq != _named("seq")] if settling else []),
        )
        .order_by(relay_queue.c.seq)
        .limit(1)
    )


DUE = _due()


def _take(due):
    """Hold the text `due` finds until `lease_until`: one statement, returning it."""
    return (
        update(relay_queue)
        .where(relay_queue.c.seq == due.scalar_subquery())
        .values(lease_until=_value(relay_queue.c.lease_until), tries=relay_queue.c.tries + 1)
        .returning(*relay_queue.c)
    )


# On SQLite the write lock keeps out every other relay; on PostgreSQL, relays in other
# processes skip the row this one takes, and take other chats' texts.
TAKE = {"sqlite": _take(DUE), "postgresql": _take(DUE.with_for_update(skip_locked=True))}

# The columns of a log entry and of a queued text, each given by its name.
LOGGED = [c.name for c in messages.c if c.name != "seq"]
QUEUED_COLUMNS = [c.name for c in relay_queue.c if c.name != "seq"]


def _claim(insert_of_dialect):
    """Take a webhook's claim: returns its key, or nothing when a copy came before."""
    done = {"state": DONE, "at": _value(claims.c.at), "chat_id": _value(claims.c.chat_id)}
    return (
        insert_of_dialect(claims)
        .values(key=_value(claims.c.key), **done)
        # A claim of an earlier version, left claimed or released, is taken over.
        .on_conflict_do_update(index_elements=["key"], set_=done, where=claims.c.state != DONE)
        .returning(claims.c.key)
    )


# `ChatStore.enqueue` on SQLite, statement by statement in one transaction.
CLAIM = _claim(sqlite.insert)
COUNT = (
    update(chats)
    .where(chats.c.id == _value(chats.c.id, "chat_id"))
    .values(
        message_count=chats.c.message_count + 1,
        last_activity_at=_value(chats.c.last_activity_at, "at"),
    )
)
# The same, for an entry whose text is queued: it returns the chat's texts in the queue, with
# this one (1: no other waits, and the text may be held as it is queued).
COUNT_QUEUED = COUNT.values(relay_waiting=chats.c.relay_waiting + 1).returning(
    chats.c.relay_waiting
)
LOG = insert(messages).values({n: _value(messages.c[n]) for n in LOGGED}).returning(messages.c.seq)


def _queued_value(name: str):
    # The queued text is given as `relay_text`: `text` is the log's copy, None unless bodies
    # are kept.
    return _value(relay_queue.c[name], "relay_text" if name == "text" else name)


QUEUE = insert(relay_queue).values(
    seq=_value(relay_queue.c.seq), **{n: _queued_value(n) for n in QUEUED_COLUMNS}
)


def _queue_from(logged, touched, columns: dict):
    """Queue the text logged as `logged`, in the chat `touched` counted it in; `columns` are
    given otherwise than by name. Held as it is queued when asked (`hold_until`) and no other
    text of its chat waits."""
    hold_until = _value(relay_queue.c.lease_until, "hold_until")
    held = and_(touched.c.relay_waiting == 1, hold_until.is_not(None))
    taken = {"lease_until": case((held, hold_until)), "tries": case((held, 1), else_=0)}
    values = {**columns, **taken}
    return (
        insert(relay_queue)
        .from_select(
            ["seq", *QUEUED_COLUMNS],
            select(
                logged.c.seq, *(values.get(n, _queued_value(n)) for n in QUEUED_COLUMNS)
            ).select_from(logged.join(touched, true())),
        )
        .returning(relay_queue.c.lease_until, relay_queue.c.recipient)
    )


def _enqueue(with_job: bool):
    """`ChatStore.enqueue` on PostgreSQL as one statement of four (claim, count, log, queue),
    each going on only if the one before it did: one round trip instead of six."""
    claim = _claim(postgresql.insert).cte("claim")
    counted = COUNT_QUEUED if with_job else COUNT.returning(chats.c.id)
    touched = counted.where(exists(select(claim.c.key))).cte("touched")
    logged = (
        insert(messages)
        .from_select(LOGGED, select(*(_value(messages.c[n]) for n in LOGGED)).select_from(touched))
        .returning(messages.c.seq)
        .cte("logged")
    )
    found = [select(logged.c.seq).scalar_subquery()]
    if with_job:
        queued = _queue_from(logged, touched, {}).cte("queued")
        found.append(select(queued.c.lease_until.is_not(None)).scalar_subquery())
    return select(*found)


ENQUEUE = {True: _enqueue(True), False: _enqueue(False)}


def _enqueue_routed():
    """`ChatStore.enqueue_routed` on PostgreSQL: ENQUEUE of a text in the chat its `route`
    finds (one lookup of the routes' primary key), which fills in the chat's columns: one
    round trip where finding the chat first took two."""
    idle_before = _value(chats.c.last_activity_at, "idle_before")
    route = (
        select(chats.c.id)
        .select_from(routes.join(chats, routes.c.chat_id == chats.c.id))
        .where(
            routes.c.number == _named("number"),
            routes.c.participant == _named("sender"),
            IS_ACTIVE,
            chats.c.created_at <= _value(chats.c.created_at, "since"),
            or_(idle_before.is_(None), chats.c.last_activity_at >= idle_before),
        )
        .cte("route")
    )
    claim_of = postgresql.insert(claims)
    done = {"state": DONE, "at": _value(claims.c.at), "chat_id": claim_of.excluded.chat_id}
    claim = (
        claim_of.from_select(
            ["key", "state", "at", "chat_id"],
            select(_value(claims.c.key), literal(DONE), _value(claims.c.at), route.c.id),
        )
        .on_conflict_do_update(index_elements=["key"], set_=done, where=claims.c.state != DONE)
        .returning(claims.c.chat_id)
        .cte("claim")
    )
    touched = (
        update(chats)
        .where(chats.c.id.in_(select(claim.c.chat_id)))
        .values(
            message_count=chats.c.message_count + 1,
            last_activity_at=_value(chats.c.last_activity_at, "at"),
            relay_waiting=chats.c.relay_waiting + 1,
        )
        .returning(chats.c.id, chats.c.user_a, chats.c.user_b, chats.c.relay_waiting)
        .cte("touched")
    )
    from_a = touched.c.user_a == _named("sender")
    chat_columns = {
        "chat_id": touched.c.id,
        "direction": case((from_a, A_TO_B), else_=B_TO_A),
        "recipient": case((from_a, touched.c.user_b), else_=touched.c.user_a),
    }
    logged = (
        insert(messages)
        .from_select(
            LOGGED,
            select(*(chat_columns.get(n, _value(messages.c[n])) for n in LOGGED)).select_from(
                touched
            ),
        )
        .returning(messages.c.seq)
        .cte("logged")
    )
    queued = _queue_from(logged, touched, chat_columns).cte("queued")
    return select(
        select(route.c.id).scalar_subquery().label("chat_id"),
        select(logged.c.seq).scalar_subquery().label("seq"),
        select(queued.c.lease_until.is_not(None)).scalar_subquery().label("held"),
        select(queued.c.recipient).scalar_subquery().label("recipient"),
    )


ENQUEUE_ROUTED = _enqueue_routed()

_gone = (
    relay_queue.delete()
    .where(relay_queue.c.seq == _named("seq"))
    .returning(relay_queue.c.seq, relay_queue.c.chat_id)
    .cte("gone")
)
_done = (
    update(messages)
    .where(messages.c.seq.in_(select(_gone.c.seq)))
    .values(
        outcome=_named("outcome"),
        vonage_message_ids=_named("vonage_message_ids"),
        detail=_named("detail"),
    )
    .returning(messages.c.seq)
    .cte("done")
)
_parts_sent = (
    insert(sent_parts)
    .from_select(
        ["message_seq", "vonage_message_id"],
        select(_done.c.seq, func.unnest(_named("message_ids", type_=ARRAY(String)))),
    )
    .returning(sent_parts.c.message_seq)
    .cte("parts_sent")
)
# The chat's texts still in the queue, once this one left it.
_still_waiting = (
    update(chats)
    .where(chats.c.id.in_(select(_gone.c.chat_id)))
    .values(relay_waiting=chats.c.relay_waiting - 1)
    .returning(chats.c.relay_waiting)
    .cte("still_waiting")
)
# What settling a text did: written only if it was in the queue.
_settled = [
    select(func.count()).select_from(_done).scalar_subquery(),
    select(func.count()).select_from(_parts_sent).scalar_subquery(),
    select(_still_waiting.c.relay_waiting).scalar_subquery(),
]
# `ChatStore.finish_relay` on PostgreSQL as one statement: the text leaves the queue, and
# only if it was there is its log entry written, with the ids of the SMS parts Vonage sent,
# and its chat's count of waiting texts lowered.
FINISH = select(*_settled)
# `ChatStore.finish_and_take` on PostgreSQL: FINISH, and TAKE of the next text due (its
# row; none when none is due), in one statement.
_taken = _take(_due(settling=True).with_for_update(skip_locked=True)).cte("taken")
FINISH_AND_TAKE = select(*_taken.c, *_settled)
