"""Handing a visitor to a person: the session's handoff state, agent messages, notes, contacts.

The state lives on the session row (`ChatSession.handoff_state`, `assigned_agent`) because
every visitor turn already locks that row: a claim and a turn are ordered by the lock, so a
visitor message either starts an AI reply before the takeover or none after it. Each request
for a person is also a `Handoff` row, the history the analytics of human support read.

`services` holds the writes (one transaction each, for `database_sync_to_async`), `selectors`
the reads. The visitor's socket (`assistant.consumers`) and the agent desk call both.
"""
