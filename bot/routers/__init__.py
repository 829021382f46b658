"""Routers by audience: customers in private chats (customer.py), agents in their group
chat (agents.py)."""
