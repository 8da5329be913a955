"""Run Alembic from code: the CLI, tests and benchmarks build databases with these."""

from __future__ import annotations

import warnings
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from mdfledger.config import PROJECT_ROOT
from mdfledger.db import load_models, make_engine


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def schema_diff(database_url: str) -> list[Any]:
    """Differences between the models and the migrated database; empty when they agree."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            with warnings.catch_warnings():
                # SQLite cannot reflect expression indexes (lower(code)), so they are compared
                # on PostgreSQL only; a test exercises the index itself on both.
                warnings.filterwarnings("ignore", message=".*expression-based index")
                return compare_metadata(context, load_models())
    finally:
        engine.dispose()
