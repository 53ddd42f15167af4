"""The web layer: the chat API, health, the webhook routes, error handlers and commands.

Views are thin: read the request, call the proxy, shape the answer.
"""
