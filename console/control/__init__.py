"""Live control of a running rollout from any shell of its operator.

Every run (TUI or headless) serves a Unix socket (server.py) that speaks
JSON Lines (protocol.py): status, operator commands and the live event
stream. `console status|pause|resume|promote|rollback|abort|attach` are its
clients (client.py, commands.py). Sockets live in a 0700 directory, are 0600
and check the peer's uid (SO_PEERCRED), so a run answers to its operator
and to root only (runs.py finds them and clears stale ones).
"""
