"""Multi-row INSERT and upsert statements for the hot write paths, built once per shape.

Django's ORM spends 0.3–0.5 ms of CPU compiling each statement (docs/benchmarks.md). The chat
turn (`assistant.sql`), the analytics writer (`analytics.sql`) and the demo data loader
(`analytics.demo`) send many rows of one model at a time, so they build their statement here,
once per model, columns and row count, and send it through Django's own connection: same
transaction, same pool, same value adapters (`Field.get_db_prep_save`).

The SQL is portable between SQLite (3.35+, for `RETURNING`; 3.24+ for `ON CONFLICT`) and
Postgres. This module sits below both apps (`assistant` never imports `analytics`), so it knows
models only through their `_meta`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field, Model

Row = tuple[Any, ...]

#: Bind parameters per statement: SQLite's limit (32,766 since 3.32); Postgres allows 65,535.
MAX_PARAMS = 32_766


def quote(name: str) -> str:
    """A table or column name quoted for the database in use."""
    return connection.ops.quote_name(name)


def execute(sql: str, params: Sequence[object]) -> list[Row]:
    """Run one statement; the rows it returns (none for a plain write)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


@functools.cache
def columns(model: type[Model], *, pk: bool = True) -> tuple[Field, ...]:
    """The model's concrete fields in table order; without the primary key when the database numbers rows."""
    return tuple(field for field in model._meta.concrete_fields if pk or not field.primary_key)


def prepare(field: Field, value: object) -> object:
    """`value` as the database driver wants it for `field` (JSON, datetimes, UUIDs on SQLite)."""
    return field.get_db_prep_save(value, connection)


def values(obj: Model, fields: Iterable[Field], *, stamp: bool) -> list[object]:
    """`obj`'s column values, prepared for the driver.

    `stamp` applies `auto_now`/`auto_now_add` (`Field.pre_save`) as `save()` does for a new row;
    without it the values already on the instance are written (historic rows keep their times).
    """
    db = connections[DEFAULT_DB_ALIAS]  # once per row: each use of the `connection` proxy is a lookup
    if stamp:
        return [field.get_db_prep_save(field.pre_save(obj, True), db) for field in fields]
    return [field.get_db_prep_save(getattr(obj, field.attname), db) for field in fields]


def values_from(mapping: Mapping[str, object], fields: Iterable[Field]) -> list[object]:
    """The values of `fields` (by name) in `mapping`, prepared for the driver."""
    db = connections[DEFAULT_DB_ALIAS]
    return [field.get_db_prep_save(mapping[field.name], db) for field in fields]


def insert_sql(
    model: type[Model],
    rows: int,
    *,
    pk: bool = True,
    returning: bool = False,
    conflict: str | None = None,
    keep: tuple[str, ...] = (),
) -> str:
    """`INSERT INTO … VALUES (…), (…) …` of `rows` rows of `columns(model, pk=pk)`, built once per shape.

    With `conflict` (the name of a unique field), a row whose `conflict` value is already stored
    replaces that row's columns instead, except the fields named in `keep` (`ON CONFLICT … DO
    UPDATE`). With `returning`, the statement returns the primary key of every row, in order.
    """
    return _insert_sql(connection.vendor, model, rows, pk, returning, conflict, keep)


@functools.cache
def _insert_sql(
    vendor: str, model: type[Model], rows: int, pk: bool, returning: bool, conflict: str | None, keep: tuple[str, ...]
) -> str:
    # Keyed by cheap values (a model class, flags, names): this runs on every chat turn.
    fields = columns(model, pk=pk)
    names = ", ".join(quote(field.column) for field in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({names}) VALUES {', '.join([row] * rows)}"
    if conflict is not None:
        assignments = ", ".join(
            f"{quote(field.column)} = EXCLUDED.{quote(field.column)}" for field in fields if field.name not in keep
        )
        sql += f" ON CONFLICT ({quote(model._meta.get_field(conflict).column)}) DO UPDATE SET {assignments}"
    if returning:
        sql += f" RETURNING {quote(model._meta.pk.column)}"
    return sql


def insert(
    model: type[Model],
    rows: Sequence[Sequence[object]],
    *,
    pk: bool = True,
    returning: bool = False,
    conflict: str | None = None,
    keep: tuple[str, ...] = (),
    max_rows: int | None = None,
) -> list[Row]:
    """INSERT prepared `rows` (values in `columns(model, pk=pk)` order) in as few statements as allowed.

    At most `max_rows` rows (by default as many as `MAX_PARAMS` allows) go in one statement;
    each statement is atomic on its own, so callers wanting all or nothing wrap the call in a
    transaction. Returns the primary keys (`returning`) of all statements, in the order of `rows`.
    """
    if not rows:
        return []
    limit = max(1, min(max_rows or MAX_PARAMS, MAX_PARAMS // len(columns(model, pk=pk))))
    returned: list[Row] = []
    for start in range(0, len(rows), limit):
        chunk = rows[start : start + limit]
        params = [value for row in chunk for value in row]
        sql = insert_sql(model, len(chunk), pk=pk, returning=returning, conflict=conflict, keep=keep)
        returned += execute(sql, params)
    return returned
