"""Cases: opening, the lifecycle and its actions, the conversation, queries and
serializers. Every function here is keyword-only, takes the session and `now` (through
the Context), adds and flushes, and never commits: the edge (an HTTP request, a Telegram
update, a job run) owns the transaction."""
