"""Programs (MDF and co-op), their periods and activity catalog, partners, and partner funds:
budgets, allocations and corrections, co-op accrual imports, expiry, and balance breakdowns.

Money moves only through the ledger; these services say what each movement means.
"""

from mdfledger.programs.balances import (
    Breakdown,
    Expiring,
    FundLine,
    Utilisation,
    partner_breakdown,
    partner_breakdowns,
    program_utilisation,
)
from mdfledger.programs.funds import (
    ExpiredFund,
    ExpiryRun,
    adjust_fund,
    allocate,
    expire_funds,
    fund_budget,
    fund_for,
    period_of,
    reverse_allocation,
    run_expiry,
    today,
)
from mdfledger.programs.imports import (
    ImportRejected,
    ImportReport,
    RowResult,
    import_allocations,
    import_purchases,
    imports_query,
)
from mdfledger.programs.models import (
    AccrualRate,
    Activity,
    Allocation,
    AllocationKind,
    Contact,
    ExpiryPolicy,
    Fund,
    Import,
    ImportKind,
    Partner,
    PartnerStatus,
    PartnerType,
    Program,
    ProgramKind,
    ProgramStatus,
    ProofType,
    Purchase,
)
from mdfledger.programs.rules import Period
from mdfledger.programs.service import (
    add_activity,
    add_contact,
    add_partner_user,
    create_partner,
    create_program,
    get_partner,
    get_program,
    partner_by_code,
    partner_users,
    partners_query,
    program_by_code,
    programs_query,
    set_accrual_rate,
    update_activity,
    update_partner,
    update_program,
)

__all__ = [
    "AccrualRate", "Activity", "Allocation", "AllocationKind", "Breakdown", "Contact",
    "ExpiredFund", "Expiring", "ExpiryPolicy", "ExpiryRun", "Fund", "FundLine", "Import",
    "ImportKind", "ImportRejected", "ImportReport", "Partner", "PartnerStatus", "PartnerType",
    "Period", "Program", "ProgramKind", "ProgramStatus", "ProofType", "Purchase", "RowResult",
    "Utilisation", "add_activity", "add_contact", "add_partner_user", "adjust_fund", "allocate",
    "create_partner", "create_program", "expire_funds", "fund_budget", "fund_for", "get_partner",
    "get_program", "import_allocations", "import_purchases", "imports_query", "partner_breakdown",
    "partner_breakdowns", "partner_by_code", "partner_users", "partners_query", "period_of",
    "program_by_code", "program_utilisation", "programs_query", "reverse_allocation", "run_expiry",
    "set_accrual_rate", "today", "update_activity", "update_partner", "update_program",
]  # fmt: skip
