"""Gunicorn settings for the README's run command (options on the command line win).

With an SQL store (DATABASE_URL) every worker process shares the chats, so there is one
worker per core. With the memory store each worker would have chats of its own, and a reply
reaching another worker than its chat would be dropped: there is one worker, and a command
line that asks for more is refused.
"""

import os
import secrets
import sys

from dotenv import dotenv_values

bind = "127.0.0.1:3000"
# Each connection is a greenlet: a relay mostly waits on Vonage's answer, and the worker serves
# others meanwhile. A client that sends its request slowly (or never finishes it) holds only
# its greenlet: with gthread it held one of a few threads, and 32 such clients stopped every
# webhook. psycopg 3 and requests wait cooperatively; SQLite's waits for its lock are in
# Python (sql_store.py). Up to worker_connections clients at once, each with its own greenlet.
# gunicorn_worker.Worker is gevent's, with a keep-alive deadline that spares a request waiting
# to be read when the worker was held up (gunicorn_worker.py says how that reset a client).
worker_class = "gunicorn_worker.Worker"
worker_connections = 1000
# Gunicorn 27's control socket sits at one path per user; two services would clash there.
control_socket_disable = True


def _setting(name: str) -> str:
    # The same layers as the app's settings: the environment wins over .env.
    if name in os.environ:
        return os.environ[name].strip()
    return (dotenv_values(".env").get(name) or "").strip()


# WEB_CONCURRENCY (gunicorn's own variable) or --workers choose another count.
sql_workers = int(_setting("WEB_CONCURRENCY") or os.cpu_count() or 1)
workers = sql_workers if _setting("DATABASE_URL") else 1


# settings.py checks ACCESS_LOG (a wrong value stops start-up); these are its YES words, kept
# here so that the master imports nothing of the app's before the workers patch for gevent.
if _setting("ACCESS_LOG").lower() in ("1", "true", "yes", "on"):
    accesslog = "-"
# The path without its query string (a GET webhook carries numbers and the text there), and
# no referrer or user agent, which may carry them too.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'


if not _setting("ADMIN_API_TOKEN"):
    # Every worker must take the same token: make one up here, once, before they start.
    os.environ["ADMIN_API_TOKEN"] = secrets.token_urlsafe(32)
    print(
        "ADMIN_API_TOKEN is not set, so the service made one up; the chat API needs it as "
        f"the header Authorization: Bearer {os.environ['ADMIN_API_TOKEN']} (set "
        "ADMIN_API_TOKEN to keep one).",
        file=sys.stderr,
    )


def on_starting(server) -> None:
    """Refuse to split the memory store between workers."""
    if not _setting("DATABASE_URL") and server.cfg.workers > 1:
        server.log.error(
            "The memory store keeps chats in one process, so it runs one worker (here %d "
            "were asked for): a reply reaching another worker than its chat would be dropped. "
            "Set DATABASE_URL to an SQL store to run several workers.",
            server.cfg.workers,
        )
        sys.exit(1)
