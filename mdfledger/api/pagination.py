"""Numbered pages for API lists: the query arguments, the query, and the documented envelope.

    @blp.route("/things")
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, page_schema(ThingSchema))
    def things(args):
        return paginate(get_read_session(), select(Thing).order_by(Thing.id), args)

The statement needs an ORDER BY that decides every tie (end it with the primary key), or rows
can repeat or go missing between pages. Filters go in a subclass of PageArgsSchema.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import marshmallow as ma
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_PAGE = 1_000_000  # keeps OFFSET within a 64-bit integer whatever a client sends


class PageArgsSchema(ma.Schema):
    page = ma.fields.Integer(
        load_default=1, validate=ma.validate.Range(min=1, max=MAX_PAGE), metadata={"example": 1}
    )
    per_page = ma.fields.Integer(
        load_default=DEFAULT_PER_PAGE,
        validate=ma.validate.Range(min=1, max=MAX_PER_PAGE),
        metadata={"example": DEFAULT_PER_PAGE},
    )


def paginate(session: Session, select_stmt: Select[Any], args: dict[str, Any]) -> dict[str, Any]:
    """One page of `select_stmt` with the total. A statement of one column or entity gives its
    values (ORM objects, say); one of several gives rows."""
    page = args.get("page", 1)
    per_page = args.get("per_page", DEFAULT_PER_PAGE)
    counted = select(func.count()).select_from(select_stmt.order_by(None).subquery())
    total = session.scalar(counted) or 0
    result = session.execute(select_stmt.limit(per_page).offset((page - 1) * per_page))
    single = len(select_stmt.column_descriptions) == 1  # select(Thing) or select(Thing.id)
    items = result.scalars().all() if single else result.all()
    return {
        "items": list(items),
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": -(-total // per_page),
    }


class PageSchema(ma.Schema):
    page = ma.fields.Integer(required=True)
    per_page = ma.fields.Integer(required=True)
    total = ma.fields.Integer(required=True, metadata={"description": "Items on all pages"})
    pages = ma.fields.Integer(required=True, metadata={"description": "0 when there are none"})


@cache  # one class per item schema, so the OpenAPI document names each page schema once
def page_schema(item_schema: type[ma.Schema]) -> type[ma.Schema]:
    """The response schema of a page of `item_schema`: ThingSchema -> ThingPageSchema."""
    name = item_schema.__name__.removesuffix("Schema") + "PageSchema"
    items = ma.fields.List(ma.fields.Nested(item_schema), required=True)
    return type(name, (PageSchema,), {"items": items, "__module__": item_schema.__module__})
