"""Bulk writes for the ledger's batches: the drivers' fastest paths, with plain SQL.

COPY on PostgreSQL and executemany on SQLite for new rows; one UPDATE ... FROM unnest(...) and
one INSERT ... SELECT FROM unnest(...) ON CONFLICT per batch on PostgreSQL for balances and
daily rows. The ORM's per-row bookkeeping would cost more than everything else in a batch.
Only mdfledger.ledger.service uses this.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date
from sqlalchemy.orm import Session

from mdfledger.clock import ensure_utc
from mdfledger.db import UTCDateTime

BALANCE_NAMES = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
_BALANCES = ", ".join(BALANCE_NAMES)
_ADD_TO_DAY = "ON CONFLICT (account_id, day) DO UPDATE SET " + ", ".join(
    f"{n} = ledger_account_days.{n} + excluded.{n}" for n in BALANCE_NAMES
)
# PostgreSQL: one statement per batch, each column sent as one array.
_PG_SET_BALANCES = (
    "UPDATE ledger_accounts AS a SET "
    + ", ".join(f"{n} = v.{n}" for n in BALANCE_NAMES)
    + f" FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])"
    f" AS v(id, {_BALANCES}) WHERE a.id = v.id"
)
_PG_ADD_DAYS = (
    f"INSERT INTO ledger_account_days (account_id, day, {_BALANCES}) SELECT * FROM unnest("
    "%s::bigint[], %s::date[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) "
    + _ADD_TO_DAY
)
# SQLite: executemany, in process.
_SQLITE_SET_BALANCES = (
    "UPDATE ledger_accounts SET " + ", ".join(f"{n} = ?" for n in BALANCE_NAMES) + " WHERE id = ?"
)
_SQLITE_ADD_DAYS = (
    f"INSERT INTO ledger_account_days (account_id, day, {_BALANCES}) VALUES (?, ?, ?, ?, ?, ?) "
    + _ADD_TO_DAY
)


def sqlite_text(value: Any) -> Any:
    """Dates and times as SQLite stores them: the text SQLAlchemy writes (see UTCDateTime)."""
    if isinstance(value, datetime):
        return ensure_utc(value).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return value


class BulkWriter:
    def __init__(self, session: Session) -> None:
        self.connection = session.connection()
        self.postgres = self.connection.dialect.name == "postgresql"

    def insert(self, table: Any, rows: list[tuple[Any, ...]]) -> None:
        """Append rows, given as tuples in the table's column order."""
        columns = [c.name for c in table.columns]
        if self.postgres:
            raw = self.connection.connection.driver_connection
            copy_sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
            with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
            return
        timed = [i for i, c in enumerate(table.columns) if isinstance(c.type, UTCDateTime | Date)]
        converted: dict[Any, Any] = {}  # a batch shares a few distinct dates and times
        out = []
        for row in rows:
            values = list(row)
            for i in timed:
                v = values[i]
                if v is not None:
                    values[i] = converted.get(v) or converted.setdefault(v, sqlite_text(v))
            out.append(tuple(values))
        placeholders = ", ".join("?" * len(columns))
        self._many(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})", out)

    def set_balances(self, rows: list[tuple[int, int, int, int, int]]) -> None:
        """(account id, debits_pending, debits_posted, credits_pending, credits_posted)"""
        if self.postgres:
            self._arrays(_PG_SET_BALANCES, rows)
        else:
            self._many(_SQLITE_SET_BALANCES, [(*balances, id_) for id_, *balances in rows])

    def add_days(self, rows: list[tuple[Any, ...]]) -> None:
        """(account id, day, four balance changes): added to the day's row, created if new."""
        if self.postgres:
            self._arrays(_PG_ADD_DAYS, rows)
        else:
            self._many(_SQLITE_ADD_DAYS, [(a, sqlite_text(d), *rest) for a, d, *rest in rows])

    def _arrays(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            columns = tuple(list(column) for column in zip(*rows, strict=True))
            self.connection.exec_driver_sql(sql, columns)

    def _many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self.connection.exec_driver_sql(sql, rows)
