"""The service's `flask` commands."""

import click
from flask import Flask, current_app
from flask.cli import with_appcontext


def register_commands(app: Flask) -> None:
    """Add the service's commands to `flask --app app`."""
    app.cli.add_command(init_db_command)


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create the SQL store's tables and indexes where missing (DATABASE_URL)."""
    store = current_app.extensions["sms_proxy"].store
    if store.kind == "memory":
        raise click.ClickException("DATABASE_URL is empty: the memory store needs no schema.")
    store.create_schema()
    click.echo(f"The {store.kind} schema is ready.")
