"""Schema migrations of the metadata store (Alembic), applied at start-up."""
