"""Across hosts and files: export, import and sync of memory databases, the edge's outbox to a
shared store, and encoder versions shared between the hosts of one robot."""
