"""Migrations are the schema: they build every table, agree with the models, and go both ways."""

from __future__ import annotations

from sqlalchemy import inspect

from mdfledger import migrate
from mdfledger.db import load_models


def test_models_and_migrations_agree(database_url: str) -> None:
    assert migrate.schema_diff(database_url) == []


def test_every_model_table_is_migrated(engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(load_models().tables) <= tables


def test_downgrade_to_base_and_upgrade_again(database_url: str, engine) -> None:
    migrate.downgrade(database_url, "base")
    assert not set(load_models().tables) & set(inspect(engine).get_table_names())
    migrate.upgrade(database_url)
    assert migrate.schema_diff(database_url) == []
