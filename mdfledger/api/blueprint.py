"""The API's flask-smorest Blueprint: every feature's API module makes its `blp` from this one.

Its argument parser (webargs) adds two things to flask-smorest's:

- a "multipart" location: a multipart/form-data body's form fields and files in one schema
  (webargs' "form" and "files" read one half each, and flask-smorest documents only one
  request body per operation);
- no text with a NUL character gets past it, in any location (422 naming the field): nobody
  types one, and PostgreSQL cannot store or even compare one, so a filter or a file name with
  one would reach the database as an error (500) instead of an answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import flask_smorest
import marshmallow as ma
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict, FileStorage

NUL_MESSAGE = "must not contain NUL characters"


class Parser(FlaskParser):
    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "multipart": None}
    __location_map__ = {**FlaskParser.__location_map__, "multipart": "load_multipart"}

    def load_multipart(self, req: Any, schema: ma.Schema) -> Any:
        return self._makeproxy(CombinedMultiDict([req.form, req.files]), schema)

    def _process_location_data(self, location_data: Any, schema: ma.Schema, *args: Any) -> Any:
        data = super()._process_location_data(location_data, schema, *args)
        # What the schema loaded, so only fields the view gets count (unknown query
        # parameters are ignored, as always).
        bad = sorted({name for name, _ in _with_nul(data)})
        if bad:
            raise ma.ValidationError({name: [NUL_MESSAGE] for name in bad})
        return data


def _with_nul(value: Any, name: str = "_schema") -> Iterator[tuple[str, Any]]:
    """(top-level field name, value) for every text with a NUL in `value`, however nested."""
    if isinstance(value, str):
        if "\x00" in value:
            yield name, value
    elif isinstance(value, FileStorage):
        yield from _with_nul(value.filename or "", name)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            field = str(key) if name == "_schema" else name
            yield from _with_nul(key, field)
            yield from _with_nul(item, field)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _with_nul(item, name)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **flask_smorest.Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "multipart": "multipart/form-data",
    }
