"""Routers by audience: customers in private chats (agents\x27 chat to come)."""
