"""Gunicorn settings for the README's run command (options on the command line win)."""

# The chats live in the worker's memory, so there is one worker; its threads serve requests
# at the same time (a relay mostly waits on Vonage's answer).
bind = "127.0.0.1:3000"
workers = 1
threads = 8
# Gunicorn 27's control socket sits at one path per user; two services would clash there.
control_socket_disable = True
