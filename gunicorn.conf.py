"""Gunicorn settings for the README's run command (options on the command line win).

With an SQL store (DATABASE_URL) every worker process shares the chats, so there is one
worker per core. With the memory store each worker would have chats of its own, and a reply
reaching another worker than its chat would be dropped: there is one worker, and a command
line that asks for more is refused.
"""

import os
import sys
import tempfile
import traceback

from private_sms.settings import (
    SettingsError,
    layers,
    load_settings,
    make_up_admin_token,
    ready_line,
)


def _check_database(settings) -> None:
    """Open the SQL store and make its schema, in a child process, once for every worker.

    Not here: the master must not import the database driver before the workers patch for
    gevent (psycopg chooses how it waits when it is imported).
    """
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            from app import build_store

            build_store(settings).close()
        except SettingsError as error:
            print(error, file=sys.stderr)
            code = 1
        except BaseException:
            traceback.print_exc()
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(1)


# The app's own settings, read and checked as the app reads them: a wrong one stops the
# service here, with its one sentence, before any worker starts.
try:
    _settings = load_settings(layers())
except SettingsError as error:
    sys.exit(str(error))
if _settings.database_url is not None:
    _check_database(_settings)

# HOST and PORT (the tutorial's 3000 by default), as `flask run` takes them; --bind wins.
_host = f"[{_settings.host}]" if ":" in _settings.host else _settings.host
bind = f"{_host}:{_settings.port}"
# Each connection is a greenlet: a relay mostly waits on Vonage's answer, and the worker serves
# others meanwhile. A client that sends its request slowly (or never finishes it) holds only
# its greenlet: with gthread it held one of a few threads, and 32 such clients stopped every
# webhook. psycopg 3 and requests wait cooperatively; SQLite's waits for its lock are in
# Python (private_sms/stores/sql/engine.py). Up to worker_connections clients at once.
# The worker is gevent's, with a keep-alive deadline that spares a request waiting to be read
# when the worker was held up (private_sms/web/gunicorn_worker.py says how that reset a client).
worker_class = "private_sms.web.gunicorn_worker.Worker"
worker_connections = 1000
# Gunicorn 27's control socket sits at one path per user; two services would clash there.
control_socket_disable = True


# WEB_CONCURRENCY (gunicorn's own variable, which gunicorn checks) or --workers choose another
# count.
sql_workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
workers = sql_workers if _settings.database_url is not None else 1


if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Each worker counts in files of this folder, and a scrape of /metrics, at whichever
    # worker, adds them all up (prometheus-client's multiprocess mode). A new one each start.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sms-proxy-metrics-")


if _settings.access_log:
    accesslog = "-"
# The path without its query string (a GET webhook carries numbers and the text there), and
# no referrer or user agent, which may carry them too.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'


if not _settings.admin_api_token:
    # Every worker must take the same token: make one up here, once, before they start.
    os.environ["ADMIN_API_TOKEN"], _notice = make_up_admin_token()
    print(_notice, file=sys.stderr)


def when_ready(server) -> None:
    """Say, in one line, where the service listens (http://host:port) and how it is set up."""
    server.log.info(ready_line([str(listener) for listener in server.LISTENERS], _settings))


def on_starting(server) -> None:
    """Refuse to split the memory store between workers."""
    if _settings.database_url is None and server.cfg.workers > 1:
        server.log.error(
            "The memory store keeps chats in one process, so it runs one worker (here %d "
            "were asked for): a reply reaching another worker than its chat would be dropped. "
            "Set DATABASE_URL to an SQL store to run several workers.",
            server.cfg.workers,
        )
        sys.exit(1)


def child_exit(server, worker) -> None:
    """Keep what a worker that exited counted, and drop its live values."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker) -> None:
    """Let the relay workers finish the sends under way; the rest stays queued."""
    relayer = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("relayer")
    if relayer:
        relayer.stop(timeout=10)
