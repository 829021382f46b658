"""Refund money: the pure calculator and the ledger that reads and checks it."""
