"""Journal exports for auditors' own tools: hledger and beancount (issue 7).

`export_journal(session, out, fmt="hledger"|"beancount", as_of=None)` streams the accounts, every
transfer and a closing balance check per account to a text stream. See journal.py for what a
two-phase transfer looks like and rules.py for the account names.

Statements (statements.py, statement_files.py): `prepare_statement(session, actor, ...)` checks
a statement's question (a partner, a program or an account; dates; as of), then
`statement_sections` / `read_statement_page` give its figures and `statement_csv` /
`write_statement` its files. Importing this package registers the "statement" export kind.

Export jobs (service.py, jobs.py): `request_export(session, actor, kind, format, params)` queues
any registered kind (kinds.py: "journal", "audit", "statement") as a background job run as the
actor who asked; `run_export` writes, stores (files.py) and marks it ready; `export_upkeep`
expires old files and re-runs jobs whose worker vanished. The audit log exports as CSV and XLSX
(audit_log.py).
"""

from mdfledger.exports import audit_log as audit_log  # registers the "audit" kind
from mdfledger.exports import journal_kind as journal_kind  # registers the "journal" kind
from mdfledger.exports.files import ExportFiles, app_files, files_from_settings
from mdfledger.exports.job_rules import ExportState
from mdfledger.exports.jobs import ExportUpkeep, run_export
from mdfledger.exports.jobs import upkeep as export_upkeep
from mdfledger.exports.journal import ExportSummary, export_journal
from mdfledger.exports.models import ExportJob
from mdfledger.exports.rules import FORMATS, KIND_NAMES, parse_as_of
from mdfledger.exports.service import (
    EXPORT_JOB,
    ExportExpired,
    ExportFailed,
    ExportNotReady,
    Prepared,
    download,
    get_job,
    jobs_query,
    prepare,
    queue,
    record_download,
    request_export,
    write_now,
)
from mdfledger.exports.statement_files import STATEMENT
from mdfledger.exports.statement_files import csv_chunks as statement_csv
from mdfledger.exports.statement_files import write as write_statement
from mdfledger.exports.statements import Prepared as PreparedStatement
from mdfledger.exports.statements import prepare as prepare_statement
from mdfledger.exports.statements import read_page as read_statement_page
from mdfledger.exports.statements import sections as statement_sections

__all__ = [
    "EXPORT_JOB",
    "FORMATS",
    "KIND_NAMES",
    "STATEMENT",
    "ExportExpired",
    "ExportFailed",
    "ExportFiles",
    "ExportJob",
    "ExportNotReady",
    "ExportState",
    "ExportSummary",
    "ExportUpkeep",
    "Prepared",
    "PreparedStatement",
    "app_files",
    "download",
    "export_journal",
    "export_upkeep",
    "files_from_settings",
    "get_job",
    "jobs_query",
    "parse_as_of",
    "prepare",
    "prepare_statement",
    "queue",
    "read_statement_page",
    "record_download",
    "request_export",
    "run_export",
    "statement_csv",
    "statement_sections",
    "write_now",
    "write_statement",
]
