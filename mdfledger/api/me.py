"""GET /api/v1/me: whose token this is, with the role it carries."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from mdfledger.api.auth import api_caller
from mdfledger.api.blueprint import Blueprint
from mdfledger.api.errors import documented_errors

blp = Blueprint("me", __name__, url_prefix="/api/v1", description="The caller's own account")


class MeTokenSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    prefix = ma.fields.String(required=True, metadata={"description": "Tells tokens apart"})


class MeSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    email = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    role = ma.fields.String(
        required=True,
        metadata={"description": "The token's role, which may be less than the user's"},
    )
    partner_id = ma.fields.Integer(
        required=True, allow_none=True, metadata={"description": "Set for partner users"}
    )
    token = ma.fields.Nested(MeTokenSchema, required=True)


@blp.route("/me")
@blp.response(200, MeSchema)
@documented_errors(blp)()
def me() -> dict[str, Any]:
    """The token's user

    Who the bearer token belongs to and the role it carries.
    """
    caller = api_caller()
    return {
        "id": caller.user_id,
        "email": caller.email,
        "name": caller.name,
        "role": caller.role,
        "partner_id": caller.partner_id,
        "token": {"id": caller.token_id, "name": caller.token_name, "prefix": caller.token_prefix},
    }
