"""The experience store: SQLAlchemy tables and migrations, the writer thread that commits in
batches and acknowledges rows after their commit, reads, retention, SQLite file faults, and the
training inputs kept for sleep."""
