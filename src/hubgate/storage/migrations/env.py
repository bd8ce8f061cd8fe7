"""Alembic environment: runs on the connection `hubgate.storage.schema.upgrade` hands over."""

from alembic import context

from hubgate.storage import xettables  # noqa: F401 - its tables belong to Base too
from hubgate.storage.metadata import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
