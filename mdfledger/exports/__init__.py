"""Journal exports for auditors' own tools: hledger and beancount (issue 7).

`export_journal(session, out, fmt="hledger"|"beancount", as_of=None)` streams the accounts, every
transfer and a closing balance check per account to a text stream. See journal.py for what a
two-phase transfer looks like and rules.py for the account names.
"""

from mdfledger.exports.journal import ExportSummary, export_journal
from mdfledger.exports.rules import FORMATS, KIND_NAMES, parse_as_of

__all__ = ["FORMATS", "KIND_NAMES", "ExportSummary", "export_journal", "parse_as_of"]
