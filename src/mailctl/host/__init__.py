"""Adapters to the mail host: rendered files, atomic writes, locks and daemon reloads."""
