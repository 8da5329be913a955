"""The audit log: an append-only, hash-chained record of every action, written by the services
in the transaction of the change (`record`), read by auditors (`query`, `get_entry`) and checked
by `verify_audit` (`mdfledger audit verify`)."""

from mdfledger.audit.models import AuditEntry, AuditHead
from mdfledger.audit.service import (
    AuditReport,
    actions,
    changed,
    current_request_id,
    describe,
    get_entry,
    loads,
    money,
    new_request_id,
    percent,
    plain,
    query,
    record,
    request_id_scope,
    reset_request_id,
    set_request_id,
    snapshot,
    valid_request_id,
    verify_audit,
)

__all__ = [
    "AuditEntry", "AuditHead", "AuditReport", "actions", "changed", "current_request_id",
    "describe", "get_entry", "loads", "money", "new_request_id", "percent", "plain", "query",
    "record", "request_id_scope", "reset_request_id", "set_request_id", "snapshot",
    "valid_request_id", "verify_audit",
]  # fmt: skip
