"""Gunicorn settings for the README's run command (options on the command line win)."""

# The chats live in the worker's memory, so there is one worker; its threads serve requests
# at the same time (a relay mostly waits on Vonage's answer).
bind = "127.0.0.1:3000"
workers = 1
threads = 8
