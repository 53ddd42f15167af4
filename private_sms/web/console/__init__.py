"""The console: the chats, their transcripts and the relay queue in a browser, for the operator
who signed in with the admin token; in a dry run, two simulated phones to text from."""

from private_sms.web.console.views import console

__all__ = ["console"]
