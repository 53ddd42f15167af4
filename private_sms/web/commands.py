"""The service's `flask` commands: chats from the command line, and the SQL store's schema.

    flask chats create 447700900001 447700900002
    flask chats list [--status active|ended|all] [--participant N] [--number N] [--limit N]
    flask chats show ID
    flask chats messages ID
    flask chats end ID [--notify]
    flask db init
    flask relay [--workers N]

Each prints a table (or the chat, one field a line), or with `--json` what the API answers;
a mistake is one sentence and exit status 1. They work on the store the service uses
(DATABASE_URL), as the API does, and send intros and end notices as the service sends them.
`flask relay` sends the queued texts in a process of its own, beside a service whose
processes send none (RELAY_WORKERS=0).
"""

import functools
import json
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from private_sms.chats import Chat, MessageRecord
from private_sms.errors import SmsProxyError
from private_sms.relayer import RELAY_PROCESS_IDLE_SECONDS, Relayer, workers_for
from private_sms.web.chat_api import STATUSES, chat_query, page_size
from private_sms.web.chat_api import cursor as read_cursor
from private_sms.web.shapes import chat_json, message_json, page_json

chats = AppGroup("chats", help="Start, list, show and end chats, and read their message logs.")
db = AppGroup("db", help="The SQL store (DATABASE_URL).")

log = logging.getLogger(__name__)

MEMORY_STORE_ELSEWHERE = (
    "DATABASE_URL is empty, and the memory store keeps chats inside the running service's "
    "process, out of this command's reach: set DATABASE_URL (sqlite:///chats.db will do) for "
    "the service and the commands alike, or use the chat API."
)


def register_commands(app: Flask, *, serving: bool) -> None:
    """Add the service's commands to `flask`. `serving`: the app also serves requests (it is
    the one a test drives, say), so its memory store holds the chats."""
    app.extensions["commands_reach_memory_store"] = serving
    app.cli.add_command(chats)
    app.cli.add_command(db)
    app.cli.add_command(relay)
    # The name this command had before `flask db init`.
    app.cli.add_command(click.Command("init-db", callback=init_db.callback, hidden=True))


def _proxy():
    proxy = current_app.extensions["sms_proxy"]
    if proxy.store.kind == "memory" and not current_app.extensions["commands_reach_memory_store"]:
        raise click.ClickException(MEMORY_STORE_ELSEWHERE)
    return proxy


def _says_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Turn the service's errors into the command's one sentence and exit status 1."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except SmsProxyError as error:
            raise click.ClickException(error.message) from None

    return run


_as_json = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
_limit = click.option("--limit", default="", help="At most this many (1 to 500; 50).")
_cursor = click.option("--cursor", default="", help="The next page: the cursor printed last.")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _time(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = (
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    )
    return "\n".join(lines)


def _next_page(answer: dict[str, Any]) -> None:
    if answer["nextCursor"] is not None:
        click.echo(f"More: --cursor {answer['nextCursor']}")


def _echo_chat(chat: Chat, **extra: str) -> None:
    lines = {
        "id": chat.id,
        "status": chat.status,
        "user A": chat.user_a,
        "user B": chat.user_b,
        "virtual number": chat.number,
        "created": _time(chat.created_at),
        "last activity": _time(chat.last_activity_at),
        "messages": str(chat.message_count),
    }
    if chat.ended_at is not None:
        lines["ended"] = f"{_time(chat.ended_at)} ({chat.ended_reason})"
    lines.update(extra)
    width = max(map(len, lines))
    for name, value in lines.items():
        click.echo(f"{name + ':':<{width + 1}} {value}")


@chats.command("create")
@click.argument("user_a")
@click.argument("user_b")
@_as_json
@with_appcontext
@_says_errors
def create_chat(user_a: str, user_b: str, as_json: bool) -> None:
    """Start a chat between USER_A and USER_B (numbers as people type them) and text each
    an intro."""
    chat = _proxy().create_chat(user_a, user_b)
    if as_json:
        _echo_json(chat_json(chat))
        return
    _echo_chat(chat)


@chats.command("list")
@click.option("--status", type=click.Choice(list(STATUSES)), default="active", show_default=True)
@click.option("--participant", default="", help="Only this person's chats.")
@click.option("--number", default="", help="Only the chats on this pool number.")
@_limit
@_cursor
@_as_json
@with_appcontext
@_says_errors
def list_chats(
    status: str, participant: str, number: str, limit: str, cursor: str, as_json: bool
) -> None:
    """List chats, newest first."""
    size = page_size(limit)
    found = _proxy().list_chats(chat_query(status, participant, number, size, cursor))
    answer = page_json("chats", found, size, chat_json)
    if as_json:
        _echo_json(answer)
        return
    if not answer["chats"]:
        click.echo(f"No {'' if status == 'all' else status + ' '}chats.")
        return
    headers = ("ID", "STATUS", "USER A", "USER B", "NUMBER", "MESSAGES", "LAST ACTIVITY")
    rows = [
        (
            c.id,
            c.status,
            c.user_a,
            c.user_b,
            c.number,
            str(c.message_count),
            _time(c.last_activity_at),
        )
        for c in found[:size]
    ]
    click.echo(_table(headers, rows))
    _next_page(answer)


@chats.command("show")
@click.argument("chat_id")
@_as_json
@with_appcontext
@_says_errors
def show_chat(chat_id: str, as_json: bool) -> None:
    """Show one chat, active or ended."""
    chat = _proxy().get_chat(chat_id)
    if as_json:
        _echo_json(chat_json(chat))
        return
    _echo_chat(chat)


def _state(record: MessageRecord) -> str:
    if record.next_try_at is not None:
        return f"tried {record.tries}x, next at {_time(record.next_try_at)}"
    receipts = ", ".join(receipt.status for receipt in record.receipts)
    return f"receipts: {receipts}" if receipts else (record.detail or "")


@chats.command("messages")
@click.argument("chat_id")
@_limit
@_cursor
@_as_json
@with_appcontext
@_says_errors
def list_messages(chat_id: str, limit: str, cursor: str, as_json: bool) -> None:
    """Show a chat's message log, oldest first (what people wrote only with
    STORE_MESSAGE_BODIES)."""
    size = page_size(limit)
    records = _proxy().list_messages(chat_id, limit=size + 1, after=read_cursor(cursor))
    answer = page_json("messages", records, size, message_json)
    if as_json:
        _echo_json(answer)
        return
    if not answer["messages"]:
        click.echo("No messages.")
        return
    headers = ("AT", "DIRECTION", "OUTCOME", "DETAIL", "TEXT")
    rows = [(_time(r.at), r.direction, r.outcome, _state(r), r.text or "") for r in records[:size]]
    click.echo(_table(headers, rows))
    _next_page(answer)


@chats.command("end")
@click.argument("chat_id")
@click.option("--notify", is_flag=True, help="Text both people that the chat ended.")
@_as_json
@with_appcontext
@_says_errors
def end_chat(chat_id: str, notify: bool, as_json: bool) -> None:
    """End a chat; its people's texts are no longer passed on."""
    chat, notified = _proxy().end_chat(chat_id, notify=notify)
    if as_json:
        _echo_json({**chat_json(chat), "notified": notified})
        return
    _echo_chat(chat, notified=", ".join(notified) or "no one")


@db.command("init")
@with_appcontext
def init_db() -> None:
    """Create the SQL store's tables and indexes where missing (DATABASE_URL)."""
    store = current_app.extensions["sms_proxy"].store
    if store.kind == "memory":
        raise click.ClickException("DATABASE_URL is empty: the memory store needs no schema.")
    store.create_schema()
    click.echo(f"The {store.kind} schema is ready.")


@click.command("relay")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Relay workers (threads); RELAY_WORKERS if above 0, else as many as suit the store.",
)
@with_appcontext
def relay(workers: int | None) -> None:
    """Send the queued texts until stopped (Ctrl-C, SIGTERM), beside a service whose processes
    send none (RELAY_WORKERS=0): a relay process of its own, scaled apart from the web's.

    Stopping lets the sends under way finish and leaves the rest queued for the next relay.
    """
    proxy = _proxy()
    settings = current_app.extensions["settings"]
    count = workers or workers_for(settings.relay_workers, proxy.store.kind)
    relayer = Relayer(proxy.relay_next, count, idle_seconds=RELAY_PROCESS_IDLE_SECONDS)
    proxy.relays = relayer
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    relayer.start()
    log.info(
        "Relaying the queued texts of the %s store with %d workers; stop with Ctrl-C or SIGTERM.",
        proxy.store.kind,
        count,
    )
    while not stop.wait(1):
        pass
    relayer.stop(timeout=proxy.claim_lease.total_seconds())
    log.info("Stopped relaying: the texts still queued wait for the next relay.")
