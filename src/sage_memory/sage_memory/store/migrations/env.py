"""Alembic environment: runs on the connection handed over by `sage_memory.store.database.migrate`.

There is no alembic.ini: the store builds the Config in code and passes an open connection in
`config.attributes['connection']`, so migrations run inside the store's own transaction.
"""
from alembic import context

connection = context.config.attributes['connection']
# render_as_batch lets later revisions alter SQLite tables (copy-and-move).
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
