"""Routers by audience: customers in private chats (customer/, one module per part of the
conversation), agents in their group chat (agents.py)."""
