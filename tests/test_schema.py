"""The Alembic migrations build exactly the schema the models describe, on a fresh database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect

from hubgate.storage.metadata import Base, MetadataStore
from hubgate.storage.schema import alembic_config


def assert_schema_matches_models(store: MetadataStore) -> None:
    """Every model's table exists, and no model has a change that no migration carries."""
    assert set(inspect(store.engine).get_table_names()) >= set(Base.metadata.tables)
    config = alembic_config()
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.check(config)  # raises if the models have changes no migration carries


def test_migrations_match_the_models(tmp_path: Path) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path / 'hubgate.db'}")
    assert_schema_matches_models(store)
    MetadataStore(f"sqlite:///{tmp_path / 'hubgate.db'}")  # a second start finds nothing to do
