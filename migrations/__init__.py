"""Alembic's migrations (env.py, versions/), shipped as package data: tickets/db.py finds them
through `importlib.resources`, installed or in a checkout."""
