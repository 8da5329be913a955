"""Invoices: read them (a PDF's text layer, or OCR), pick out the fields, compare with the claim.

`read_invoice` turns bytes into an `InvoiceReading`: issuer, number, date, total and currency, each
with the line it came from and a confidence 0-100. `extract_fields` does the picking on plain text
(testable without OCR). `compare_invoice` judges the readings of a claim's invoices against the
claimed cost, the activity dates and the partner, as a `Finding` for finance.

Scans are turned upright (quarter turns and small skew, found from ink profiles: no OSD pass),
scaled so text lines are the height Tesseract reads best, and OCR'd one page per Tesseract call
with a time limit. Tesseract runs on one core (OMP_THREAD_LIMIT=1) so workers can run side by side.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import os
import re
import statistics
import struct
import tempfile
import threading
import time
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Generic, TypeVar

import pypdfium2 as pdfium
import pytesseract
from PIL import Image, ImageOps
from rapidfuzz import fuzz, process

from mdfledger.money import minor_units
from mdfledger.verification.outcome import Finding, Outcome, Unreadable

# Tesseract's OpenMP threads fight each other on a busy worker: one thread is faster overall.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

T = TypeVar("T")

TEXT_CAP = 20_000  # characters of recognised text kept with a reading
LOW_CONFIDENCE = 60  # below this a field is treated as not read
RENDER_DPI = 200  # PDF pages without a text layer are rendered at this resolution, then scaled
# Text lines (rows with ink, as _layout measures them) of 18 px: ~10 pt text at 160 dpi. Measured
# on the sample set: as accurate as 22-33 px and ~30% faster; 16 px starts to lose digits.
_TARGET_LINE_PX = 18
_LAYOUT_SIZE = 800  # longest side of the small copy used to find orientation and skew
_OCR_MAX_PIXELS = 12_000_000  # a page image handed to Tesseract never exceeds this
# Automatic page segmentation: as fast as "--psm 6" here and it keeps big titles whole; the
# words are regrouped into rows across the page afterwards (_ocr_lines).
_TESSERACT_CONFIG = "--psm 3"
_RENDER_MAX_PIXELS = 20_000_000  # nor does a rendered PDF page (a huge MediaBox is scaled down)
_PDFIUM = threading.Lock()  # PDFium is not thread-safe


@dataclass(frozen=True)
class Field(Generic[T]):
    """One value read from an invoice, how sure the reading is, and the line it came from."""

    value: T | None = None
    confidence: int = 0
    line: str = ""

    def as_dict(self) -> dict[str, Any]:
        value: Any = self.value.isoformat() if isinstance(self.value, date) else self.value
        return {"value": value, "confidence": self.confidence, "line": self.line}


@dataclass(frozen=True)
class InvoiceReading:
    issuer: Field[str]
    number: Field[str]
    issued_on: Field[date]
    total: Field[int]  # minor units of `currency`
    currency: Field[str]
    pages_read: int = 1
    pages_total: int = 1
    method: str = "text"  # "text": the PDF's text layer; "ocr": at least one page was OCR'd
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    text: str = ""

    def as_dict(self) -> dict[str, Any]:
        total = self.total.as_dict()
        total["formatted"] = (
            display_amount(self.total.value, self.currency.value)
            if self.total.value is not None
            else None
        )
        return {
            "issuer": self.issuer.as_dict(),
            "number": self.number.as_dict(),
            "issued_on": self.issued_on.as_dict(),
            "total": total,
            "currency": self.currency.as_dict(),
            "pages_read": self.pages_read,
            "pages_total": self.pages_total,
            "method": self.method,
            "seconds": round(self.seconds, 3),
            "notes": list(self.notes),
            "text": self.text,
        }


def display_amount(minor: int, currency: str | None) -> str:
    """123456 USD -> '1,234.56'; without a currency, two decimals are assumed."""
    places = minor_units(currency) if currency else 2
    whole, frac = divmod(abs(minor), 10**places)
    sign = "-" if minor < 0 else ""
    return f"{sign}{whole:,}.{frac:0{places}d}" if places else f"{sign}{whole:,}"


# --- lines of text, with what OCR knows about them --------------------------------------------


@dataclass(frozen=True)
class _Word:
    start: int  # character span in the line's text
    end: int
    conf: int
    left: int  # pixels on the page
    right: int


@dataclass(frozen=True)
class _Line:
    """A line of the invoice. Wide gaps between words are written as three spaces (cells)."""

    text: str
    words: tuple[_Word, ...] = ()  # empty for text layers: every character is certain

    def confidence(self, start: int = 0, end: int | None = None) -> int:
        end = len(self.text) if end is None else end
        confs = [w.conf for w in self.words if w.start < end and w.end > start]
        return min(confs) if confs else 100

    def span_x(self, start: int, end: int) -> tuple[int, int] | None:
        boxes = [(w.left, w.right) for w in self.words if w.start < end and w.end > start]
        if not boxes:
            return None
        return min(b[0] for b in boxes), max(b[1] for b in boxes)


_SPACES = str.maketrans(
    {c: " " for c in "\u00a0\u202f\u2009\u2007\u2002\u2003\u2004\u2005\u2006\u2008\t"}
    | {c: "'" for c in "\u2019\u2018\u00b4\u02bc`"}
    | {"\u2013": "-", "\u2014": "-", "\u2212": "-", "\ufffd": " "}
)
_CELL_BREAK = re.compile(r" {2,}")


def _normalise(text: str) -> str:
    """Same length in, same length out: special spaces, apostrophes and dashes made plain."""
    return text.translate(_SPACES)


def _fold(text: str) -> str:
    """Lower case without accents, same length as `text` (for matching labels and months)."""
    out = []
    for ch in text.lower():
        base = unicodedata.normalize("NFD", ch)[0] if ord(ch) > 127 else ch
        out.append(base if len(base) == 1 else ch)
    return "".join(out)


def _cell_around(line: _Line, pos: int) -> tuple[int, int]:
    """The span of the cell (text between wide gaps) containing position `pos`."""
    start, end = 0, len(line.text)
    for gap in _CELL_BREAK.finditer(line.text):
        if gap.end() <= pos:
            start = gap.end()
        elif gap.start() >= pos:
            end = gap.start()
            break
    return start, end


# --- amounts and currencies -------------------------------------------------------------------

_AMOUNT = re.compile(
    r"(?<![\w.,'/:-])"  # not the tail of a longer token: ids, dates, times
    r"(?P<int>\d{1,3}(?P<sep>[,.' ])\d{3}(?:(?P=sep)\d{3}){0,4}|\d{1,15})"
    r"(?:(?P<dec>[.,])(?P<frac>\d{1,3}))?"
    r"(?!\d|[a-z]|[/:-]\d|[.,']\d| ?%)"
)
# OCR sometimes splits "1,234.56" as "1 ,234.56" or "1, 234.56"
_SPLIT_NUMBER = re.compile(r"(?<=\d) (?=[.,]\d)|(?<=\d[.,]) (?=\d{2,3}\b)")

# Codes looked for in running text; other ISO codes are words too often ("ALL", "TOP", "PEN").
_COMMON_CODES = frozenset(
    {
        "USD",
        "EUR",
        "GBP",
        "CHF",
        "JPY",
        "CNY",
        "SEK",
        "NOK",
        "DKK",
        "ISK",
        "PLN",
        "CZK",
        "HUF",
        "RON",
        "BGN",
        "CAD",
        "AUD",
        "NZD",
        "SGD",
        "HKD",
        "INR",
        "KRW",
        "BRL",
        "MXN",
        "ZAR",
        "TRY",
        "AED",
        "SAR",
        "ILS",
        "THB",
        "MYR",
        "IDR",
        "PHP",
        "TWD",
        "VND",
        "CLP",
        "COP",
        "ARS",
        "EGP",
        "NGN",
        "KES",
    }
)
_CODE = re.compile(r"(?<![A-Za-z])(" + "|".join(sorted(_COMMON_CODES)) + r")(?![A-Za-z])")
_SYMBOLS = (  # longest first: "CA$" before "$"
    ("US$", "USD"),
    ("CA$", "CAD"),
    ("AU$", "AUD"),
    ("NZ$", "NZD"),
    ("HK$", "HKD"),
    ("C$", "CAD"),
    ("A$", "AUD"),
    ("S$", "SGD"),
    ("R$", "BRL"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("¥", "JPY"),
    ("￥", "JPY"),
    ("₹", "INR"),
    ("₩", "KRW"),
    ("₺", "TRY"),
    ("zł", "PLN"),
    ("Kč", "CZK"),
    ("Fr.", "CHF"),
    ("$", "USD"),
)
_AMBIGUOUS_SYMBOLS = {"$": 75, "¥": 80, "Fr.": 70}  # confidence when nothing else says which


@dataclass(frozen=True)
class _Amount:
    digits: str  # the matched text
    int_part: str
    sep: str | None
    dec: str | None
    frac: str
    start: int
    end: int
    currency: str | None  # a code or symbol written right next to it
    marker_conf: int  # how sure that marker is (100 for an ISO code)

    def minor(self, currency: str | None) -> int | None:
        """The amount in minor units of `currency`, or None when the digits cannot be one."""
        places = minor_units(currency) if currency else 2
        frac = self.frac if self.dec else ""
        if len(frac) == 3 and places != 3:
            return None  # "1234.567": not money in this currency
        if len(frac) > places:
            if frac[places:].strip("0"):
                return None
            frac = frac[:places]
        whole = re.sub(r"\D", "", self.int_part)
        return int(whole + frac.ljust(places, "0"))

    def money_like(self, currency: str | None) -> bool:
        """Written the way money is: decimals, grouping, or a currency next to it."""
        places = minor_units(currency) if currency else 2
        return bool(
            self.currency
            or self.sep
            or (self.dec and len(self.frac) == places)
            or (places == 0 and len(self.int_part) >= 3)
        )


def _marker_near(text: str, start: int, end: int) -> tuple[str | None, int]:
    """A currency code or symbol written just before or after text[start:end]."""
    before, after = text[max(0, start - 5) : start].rstrip(), text[end : end + 5].lstrip()
    for code in _COMMON_CODES:
        if before.endswith(code) or after.startswith(code):
            return code, 100
    for symbol, code in _SYMBOLS:
        if before.endswith(symbol) or after.startswith(symbol):
            return code, _AMBIGUOUS_SYMBOLS.get(symbol, 95)
    return None, 0


# "1500 126,00": OCR lost one of the (narrow) spaces of "1 500 126,00". Four or more digits, one
# space, then a three-digit group with decimals is one number, not a quantity and a price.
_LOST_SPACE = re.compile(r"(?<![\w.,'/:-])(\d{4,9}) $")


def _amounts(text: str) -> list[_Amount]:
    found: list[_Amount] = []
    for m in _AMOUNT.finditer(text):
        start, int_part, sep = m.start(), m["int"], m["sep"]
        lost = _LOST_SPACE.search(text, 0, start)
        if lost and m["sep"] is None and len(int_part) == 3 and m["dec"]:
            if found and found[-1].start == lost.start():
                found.pop()  # the first part was taken for an amount of its own
            start, int_part, sep = lost.start(), f"{lost[1]} {int_part}", " "
        code, conf = _marker_near(text, start, m.end())
        found.append(
            _Amount(
                text[start : m.end()],
                int_part,
                sep,
                m["dec"],
                m["frac"] or "",
                start,
                m.end(),
                code,
                conf,
            )
        )
    return found


# "$" and "¥" stand for these currencies too: when the text names one (and not the default)
_SHARED_SYMBOLS = {"USD": ("CAD", "AUD", "NZD", "SGD", "HKD", "MXN"), "JPY": ("CNY",)}


def _named_codes(lines: Sequence[_Line]) -> set[str]:
    return {m.group() for line in lines for m in _CODE.finditer(line.text)}


def _symbol_meant(code: str, named: set[str]) -> str:
    """The currency a shared symbol means here: "$" on a page that says CAD is Canadian."""
    others = [c for c in _SHARED_SYMBOLS.get(code, ()) if c in named]
    return others[0] if others and code not in named else code


def _document_currency(lines: Sequence[_Line]) -> tuple[str | None, int, str]:
    """The currency the document is written in: codes and symbols next to amounts count most."""
    named = _named_codes(lines)
    votes: dict[str, int] = {}
    where: dict[str, str] = {}
    for line in lines:
        marked = [a.currency for a in _amounts(line.text) if a.currency]
        for code in [_symbol_meant(c, named) for c in marked for _ in range(3)] + [
            m.group() for m in _CODE.finditer(line.text)
        ]:
            votes[code] = votes.get(code, 0) + 1
            where.setdefault(code, line.text)
    if not votes:
        return None, 0, ""
    best = max(votes, key=lambda c: votes[c])
    share = votes[best] / sum(votes.values())
    return best, (85 if share > 0.9 else 70 if share > 0.6 else 50), where[best]


# --- labels -----------------------------------------------------------------------------------

_GRAND_TOTAL = (
    r"grand\s*total|invoice\s+total|total\s+amount|total\s*\(?\s*(?:incl|inkl|including|ttc)"
    r"|gesamtbetrag|rechnungsbetrag|gesamtsumme|endbetrag|bruttobetrag|total\s+ttc|montant\s+ttc"
    r"|montant\s+total|importe\s+total|totale\s+fattura|summa\s+att\s+betala"
)
_DUE_TOTAL = (
    r"total\s+due|amount\s+due|total\s+payable|amount\s+payable|total\s+to\s+pay|zu\s+zahlen"
    r"|zahlbetrag|net\s+a\s+payer|a\s+payer|att\s+betala|total\s+a\s+pagar"
)
_TOTAL_LABELS = (
    (re.compile(_GRAND_TOTAL), 100),
    (re.compile(_DUE_TOTAL), 95),
    (re.compile(r"\b(?:total|totaal|totalt|totale|summe|summa)\b"), 90),
    (re.compile(r"balance\s+due|\bbalance\b|restbetrag|solde"), 70),
)
_NOT_TOTAL = re.compile(
    r"sub[\s-]?total|zwischensumme|\bht\b|hors\s+tax|net\s+total|total\s+net|\bnet\s+amount"
    r"|nettobetrag|netto|excl|excluding|before|\bvor\b|ohne\s+m|avant"
    r"|total\s+(?:tax|vat|tva|mwst|gst|hst|items?|qty|quantity|hours|units|pages|discount|paid)"
    r"|(?:tax|vat|tva|mwst|gst)\s+total|\bpaid\b|payments?\b|deposit|anzahlung|acompte"
)
_SUBTOTAL = re.compile(
    r"sub[\s-]?total|zwischensumme|total\s+ht|montant\s+ht|net\s+amount|nettobetrag|net\s+total"
)
_TAX = re.compile(r"\b(?:tax|vat|tva|mwst|ust|gst|hst|iva|moms|mva)\b")
_TABLE_HEAD = re.compile(
    r"\b(?:qty|quantity|description|unit|price|rate|hours|menge|beschreibung|einzelpreis"
    r"|designation|qte|prix|article|item)\b"
)
_NUMBER_LABELS = (
    (
        re.compile(
            r"(?:invoice|inv|bill|receipt|rechnungs?|facture|factura|fattura|faktura)\W?\s*[-.]?\s*"
            r"(?:no|nr|num|number|nummer|n[o°º*?]|#|id|numero|num)\b\.?\s*[:#.,]?"
            r"|(?:invoice|rechnung|facture)\s*(?:n\W|#)\s*[:.]?"
        ),
        92,
    ),
    (
        re.compile(r"(?:n[°º]|no\.|nr\.|numero)\s*(?:de\s+)?(?:facture|factura|rechnung)\s*[:.]?"),
        92,
    ),
    (
        re.compile(
            r"(?<![\w-])(?:number|no\.?|nr\.?|n[°º]|numero|nummer|ref(?:erence)?\.?)\s*[:#]"
        ),
        80,
    ),
    (re.compile(r"(?<![\w-])(?:invoice|rechnung|facture|factura)\s+(?=[a-z]*[-/]?\d)"), 75),
    # a misread "Rechnungsnummer:" is still some kind of "...nummer:", and not a customer's
    (
        re.compile(
            r"(?<![\w-])(?!kunden|steuer|telefon|auftrags|bestell|konto|liefer|artikel)"
            r"\w{3,}nummer\s*[:.]"
        ),
        85,
    ),
)
_NOT_NUMBER = re.compile(
    r"(?:phone|tel|fax|vat|tax|ust|mwst|order|po|p\.o|customer|client|account|acct|iban|bic|swift"
    r"|kunden|steuer|siret|siren|reg|registration|company|ein|abn|page|tva|bank|sort|routing)"
    r"\W{0,3}$"
)
_NUMBER_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-/_.]*[A-Za-z0-9]|[0-9]")
_ISSUER_LABEL = re.compile(
    r"^\s*(?:from|seller|supplier|vendor|issued\s+by|bill\s+from|invoice\s+from|lieferant"
    r"|verkaufer|absender|rechnungssteller|fournisseur|vendeur|emetteur|emisor|proveedor)\s*:\s*"
)
_BUYER = re.compile(
    r"\b(?:bill(?:ed)?\s+to|invoice\s+to|invoiced\s+to|sold\s+to|ship\s+to|customer|client|buyer"
    r"|recipient|rechnungsempf\w*|kunde|factur[e]?\s+a|destinataire|cliente|deliver\w*|attn)\b"
    r"|^an\s*:"
)
_TITLE = re.compile(
    r"^(?:tax\s+|commercial\s+|pro\s*forma\s+)?(?:invoice|rechnung|facture|factura|fattura"
    r"|faktura|receipt|bill|quittung|credit\s+note|gutschrift|avoir)\b"
)
_ADDRESS = re.compile(
    r"\d{4,}|\b(?:street|st\.|road|rd\.?|avenue|ave\.?|lane|suite|floor|p\.?\s?o\.?\s*box|"
    r"strasse|stra\u00dfe|str\.|weg|platz|gasse|rue|boulevard|bd|place|chemin|allee)\b"
    r"|^\d+\s|@|www\.|https?:|\+?\d[\d ()/-]{6,}|\bpage\s+\d"
)
_LEGAL_FORMS = (
    r"inc|llc|ltd|limited|plc|corp|corporation|co|company|gmbh|ag|kg|ohg|ug|sarl|sas|sa"
    r"|s\.a\.r\.l|b\.v|n\.v|bv|nv|ab|as|a/s|aps|oy|ou|k\.k|kk|s\.p\.a|spa|srl|pty|llp|lp|se"
    r"|gbr|e\.k|sprl|bvba|kft|sp\.\s?z\s?o\.o|s\.r\.o"
)
_COMPANY = re.compile(rf"\b(?:{_LEGAL_FORMS})\b\.?")
_DATE_LABEL_STRONG = re.compile(
    r"(?:invoice|issue|billing|rechnungs|ausstellungs)\s*date|date\s+(?:of\s+issue|de\s+facture"
    r"|d.?\s*emission|de\s+la\s+facture)|rechnungsdatum|ausstellungsdatum|issued(?:\s+on)?"
    r"|invoice\s+dated"
)
_DATE_LABEL = re.compile(r"\b(?:date|datum|dated|fecha|data|dato)\b")
_DATE_NOT = re.compile(
    r"due|fallig|zahlbar|payable|payment|echeance|avant|deliver|liefer|livraison|ship|period"
    r"|service|leistung|\bfrom\b|\bto\b|until|\bbis\b|valid|expir|order|\bpo\b|start|\bend"
    r"|begin|vencimiento|scadenza"
)


# --- dates ------------------------------------------------------------------------------------

_MONTHS: dict[str, int] = {}
for _names in (
    "january february march april may june july august september october november december",
    "januar februar marz april mai juni juli august september oktober november dezember",
    "janvier fevrier mars avril mai juin juillet aout septembre octobre novembre decembre",
    "januari februari maart april mei juni juli augustus september oktober november december",
    "jan feb mar apr may jun jul aug sep oct nov dec",
    "jan feb mar apr mai jun jul aug sep okt nov dez",
    "janv fevr mars avr mai juin juil aout sept oct nov dec",
):
    for _i, _name in enumerate(_names.split(), 1):
        _MONTHS.setdefault(_name, _i)
_MONTHS.update({"sept": 9, "maerz": 3, "jan": 1, "janv": 1, "fevr": 2, "mrz": 3})
_MONTH = "(?:" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")(?![a-z])"
_DATE_PATTERNS = (
    ("ymd", re.compile(r"(?<![\d/.-])(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?![\d/-]|\.\d)")),
    ("dmy?", re.compile(r"(?<![\d/.-])(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})(?![\d/-]|\.\d)")),
    (
        "d month y",
        re.compile(
            rf"(?<!\d)(\d{{1,2}})(?:st|nd|rd|th|er)?[.,]?[\s-]*(?:de\s+)?({_MONTH})\.?[\s,-]*"
            r"(?:de\s+)?(\d{4})(?!\d)"
        ),
    ),
    (
        "month d y",
        re.compile(
            rf"(?<![a-z])({_MONTH})\.?\s*(\d{{1,2}})(?:st|nd|rd|th)?\.?,?\s*(\d{{4}})(?!\d)"
        ),
    ),
)


# A month name OCR got slightly wrong ("9 aotit 2025"): matched loosely, trusted less.
_LOOSE_DATES = (
    ("d month y", re.compile(r"(?<!\d)(\d{1,2})[.,]?\s+([a-z]{3,10})\.?,?\s*(\d{4})(?!\d)"), 1),
    ("month d y", re.compile(r"(?<![a-z])([a-z]{3,10})\.?\s+(\d{1,2}),?\s+(\d{4})(?!\d)"), 0),
)


@dataclass(frozen=True)
class _DateMatch:
    start: int
    end: int
    kind: str
    parts: tuple[str, ...]
    certainty: int = 100  # how sure the words were read right


def _dates_in(folded: str) -> list[_DateMatch]:
    found: list[_DateMatch] = []
    for kind, pattern in _DATE_PATTERNS:
        for m in pattern.finditer(folded):
            if any(m.start() < f.end and f.start < m.end() for f in found):
                continue
            found.append(_DateMatch(m.start(), m.end(), kind, m.groups()))
    for kind, pattern, word in _LOOSE_DATES:
        for m in pattern.finditer(folded):
            if any(m.start() < f.end and f.start < m.end() for f in found):
                continue
            close = process.extractOne(m.group(word + 1), _MONTHS.keys(), scorer=fuzz.ratio)
            if close is None or close[1] < 65 or len(m.group(word + 1)) < 4:
                continue
            parts = list(m.groups())
            parts[word] = close[0]
            found.append(_DateMatch(m.start(), m.end(), kind, tuple(parts), 70))
    return sorted(found, key=lambda f: f.start)


def _make_date(year: str, month: int | str, day: int | str) -> date | None:
    y = int(year)
    if y < 100:
        y += 2000
    try:
        return date(y, int(month), int(day))
    except ValueError:
        return None


def _resolve_date(
    found: _DateMatch, day_first: bool | None, cue_conf: int
) -> tuple[date | None, int]:
    """The date, and how sure its day/month order is: 100 when only one order is possible,
    `cue_conf` when a cue decided it, 45 when nothing did."""
    p = found.parts
    if found.kind == "ymd":
        return _make_date(p[0], p[2], p[3]), 100
    if found.kind == "d month y":
        return _make_date(p[2], _MONTHS[p[1]], p[0]), 100
    if found.kind == "month d y":
        return _make_date(p[2], _MONTHS[p[0]], p[1]), 100
    a, sep, b, year = int(p[0]), p[1], int(p[2]), p[3]
    if sep == "." or a > 12 or a == b:
        return _make_date(year, b, a), 100  # dotted dates are day first everywhere
    if b > 12:
        return _make_date(year, a, b), 100
    if day_first is None:
        return _make_date(year, b, a), 45  # no cue at all: day first (most of the world)
    return (_make_date(year, b, a) if day_first else _make_date(year, a, b)), cue_conf


# --- picking the fields -----------------------------------------------------------------------


def _field_conf(pattern_conf: int, ocr_conf: int) -> int:
    """A field is as sure as its pattern and as the OCR of the characters it was read from."""
    return max(0, min(pattern_conf, ocr_conf + 5, 100))


def _pick_currency(
    lines: Sequence[_Line], total: _Amount | None, total_line: _Line | None
) -> Field[str]:
    doc, doc_conf, doc_line = _document_currency(lines)
    if total is not None and total.currency and total_line is not None:
        code, conf = total.currency, total.marker_conf
        if conf < 100:  # a symbol: what else on the page says which currency it means
            named = _named_codes(lines)
            code = _symbol_meant(code, named)
            if code in named:
                conf = 95
        ocr = total_line.confidence(max(0, total.start - 4), total.end + 4)
        return Field(code, _field_conf(conf, ocr), total_line.text)
    if doc:
        return Field(doc, doc_conf, doc_line)
    return Field()


def _total_candidates(
    lines: Sequence[_Line], folded: Sequence[str]
) -> list[tuple[_Amount, int, _Line]]:
    """(amount, label priority, line) for every labelled total in the document."""
    out: list[tuple[_Amount, int, _Line]] = []
    for i, (line, low) in enumerate(zip(lines, folded, strict=True)):
        label = _first_label(low, _TOTAL_LABELS)
        if label is None:
            continue
        lstart, lend, priority = label
        cstart, cend = _cell_around(line, lstart)
        if _NOT_TOTAL.search(low[cstart : lend + 12]):
            continue
        after = [a for a in _amounts(_squeezed(line.text, lend)) if a.start >= lend]
        if after:
            out.append((after[-1], priority, line))
            continue
        # a label alone in its cell ("AMOUNT DUE" in a box): the amount may be on the next lines
        rest = line.text[cstart:cend].strip()
        if len(rest) > lend - lstart + 2 or _TABLE_HEAD.search(low):
            continue
        x = line.span_x(lstart, lend)
        for below in lines[i + 1 : i + 3]:
            amounts = _amounts(_squeezed(below.text, 0))
            if x is not None:
                amounts = [a for a in amounts if _overlaps(below.span_x(a.start, a.end), x)]
            elif len(amounts) != 1 or len(below.text.strip()) > len(amounts[0].digits) + 6:
                amounts = []
            if amounts:
                out.append((amounts[-1], priority - 15, below))
                break
    return out


def _label_start(line: _Line, pos: int) -> int:
    """Where the label of the value at `pos` starts: its own cell, or the cell before it when
    the value stands in a cell of its own ("Invoice date:   Dec 28, 2025")."""
    start, _ = _cell_around(line, pos)
    if not line.text[start:pos].strip() and start > 0:
        start, _ = _cell_around(line, len(line.text[:start].rstrip()) - 1)
    return max(start, pos - 40)


def _overlaps(a: tuple[int, int] | None, b: tuple[int, int]) -> bool:
    return a is not None and a[0] < b[1] and b[0] < a[1]


def _squeezed(text: str, start: int) -> str:
    """`text` with OCR's stray spaces inside numbers from `start` on closed up, same length."""
    head, tail = text[:start], text[start:]
    fixed = _SPLIT_NUMBER.sub("", tail)
    return head + fixed + " " * (len(tail) - len(fixed))


def _first_label(
    low: str, labels: Sequence[tuple[re.Pattern[str], int]]
) -> tuple[int, int, int] | None:
    """The best label in a folded line: (start, end, priority)."""
    best = None
    for pattern, priority in labels:
        m = pattern.search(low)
        if m and (best is None or priority > best[2]):
            best = (m.start(), m.end(), priority)
    return best


def _pick_total(
    lines: Sequence[_Line], folded: Sequence[str]
) -> tuple[Field[int], Field[str], list[str]]:
    notes: list[str] = []
    candidates = _total_candidates(lines, folded)
    if not candidates:  # no label: the largest amount written with a currency, unsure
        loose = [
            (a, 40, line)
            for line, low in zip(lines, folded, strict=True)
            if not (_SUBTOTAL.search(low) or _TAX.search(low))
            for a in _amounts(line.text)
            if a.currency is not None
        ]
        if not loose:
            return Field(), _pick_currency(lines, None, None), ["no total found on the invoice"]
        currency = _pick_currency(lines, None, None).value
        best = max(loose, key=lambda c: c[0].minor(currency) or 0)
        candidates = [best]
        notes.append("no line labelled as the total; took the largest amount")
    # The currency is read first: it says how many decimals the amounts have.
    first = max(candidates, key=lambda c: c[1])
    currency = _pick_currency(lines, first[0], first[2])
    code = currency.value
    subtotals, taxes = _subtotals_and_taxes(lines, folded, code)
    sums = {s + t for s in subtotals for t in taxes}
    if sums and not any(a.minor(code) in sums for a, _, _ in candidates):
        # A total whose label OCR garbled ("Montant TIC"): the amount that adds up.
        for line, low in zip(lines, folded, strict=True):
            if _SUBTOTAL.search(low) or _TAX.search(low):
                continue
            found = _amounts(_squeezed(line.text, 0))
            adds_up = [a for a in found if a.minor(code) in sums and a.money_like(code)]
            if adds_up:  # as well labelled as any total read from the same line
                same_line = [p for _, p, ln in candidates if ln is line]
                candidates.append((adds_up[-1], max([85, *same_line]), line))
    scored: dict[int, list[tuple[_Amount, int, _Line]]] = {}
    for amount, priority, line in candidates:
        value = amount.minor(code)
        if value is None or not amount.money_like(code):
            continue
        scored.setdefault(value, []).append((amount, priority, line))
    if not scored:
        return Field(), currency, ["the total line holds no readable amount"]

    def score(value: int) -> tuple[int, int]:
        group = scored[value]
        points = max(p for _, p, _ in group) + 8 * (len({id(ln) for _, _, ln in group}) - 1)
        if value in sums or (value in subtotals and not taxes):
            points += 10
        if value == 0:
            points -= 50
        return points, value

    ranked = sorted(scored, key=score, reverse=True)
    value = ranked[0]
    best_points = score(value)[0]
    amount, priority, line = max(scored[value], key=lambda c: c[1])
    conf = {100: 95, 95: 93, 90: 90, 85: 80, 80: 78, 75: 75}.get(priority, priority)
    conf = min(conf + 4 * (len(scored[value]) - 1), 98)
    if len(ranked) > 1 and score(ranked[1])[0] >= best_points - 10:
        conf -= 25  # another total, as well labelled, says something else
        notes.append(
            "the invoice shows different totals: "
            + ", ".join(display_amount(v, code) for v in ranked[:3])
        )
    if amount.sep and amount.sep == amount.dec:
        conf -= 15  # "1.234.56": one of the separators was misread
    if code is None:
        conf = min(conf, 40)
        notes.append("no currency found; the total assumes two decimal places")
    ocr = line.confidence(max(0, amount.start - 1), amount.end)
    return Field(value, _field_conf(conf, ocr), line.text), currency, notes


def _subtotals_and_taxes(
    lines: Sequence[_Line], folded: Sequence[str], code: str | None
) -> tuple[set[int], set[int]]:
    """The amounts on subtotal lines and on tax lines (the last amount of each line)."""
    subtotals: set[int] = set()
    taxes: set[int] = set()
    for line, low in zip(lines, folded, strict=True):
        subtotal = bool(_SUBTOTAL.search(low))
        if not subtotal and (not _TAX.search(low) or _is_total_line(low)):
            continue
        values = [a.minor(code) for a in _amounts(_squeezed(line.text, 0))]
        values = [v for v in values if v is not None]
        if values:
            (subtotals if subtotal else taxes).add(values[-1])
    return subtotals, taxes


def _is_total_line(low: str) -> bool:
    label = _first_label(low, _TOTAL_LABELS)
    return label is not None and not _NOT_TOTAL.search(low[: label[1] + 12])


def _number_value(text: str, start: int) -> tuple[str, int, int] | None:
    """The invoice number right after a label at `start`: (value, start, end)."""
    m = _NUMBER_VALUE.search(text, start)
    if m is None or text[start : m.start()].strip(" :#.,\u00b0") or not re.search(r"\d", m.group()):
        return None
    if len(m.group()) > 30 or any(d.start == m.start() for d in _dates_in(_fold(text))):
        return None  # a date after "Invoice" ("Facture du 17 septembre 2025"), not a number
    return m.group(), m.start(), m.end()


def _pick_number(lines: Sequence[_Line], folded: Sequence[str]) -> Field[str]:
    best: tuple[int, int, str, _Line] | None = None  # priority, confidence, value, line
    for i, (line, low) in enumerate(zip(lines, folded, strict=True)):
        for pattern, priority in _NUMBER_LABELS:
            for m in pattern.finditer(low):
                cstart, _ = _cell_around(line, m.start())
                if priority < 90 and _NOT_NUMBER.search(
                    low[max(cstart, m.start() - 16) : m.start()]
                ):
                    continue  # "Customer number:", "VAT No."
                source, found, conf = line, _number_value(line.text, m.end()), priority
                if found is None and priority >= 80 and i + 1 < len(lines):
                    # the label above its value ("Invoice Number" / "INV-0042")
                    source = lines[i + 1]
                    cell = _CELL_BREAK.split(source.text.strip())[0]
                    found, conf = _number_value(cell, 0) if cell else None, priority - 15
                    if found:
                        start = source.text.find(cell)
                        found = (found[0], start + found[1], start + found[2])
                if found is None:
                    continue
                value, vstart, vend = found
                conf = _field_conf(conf, source.confidence(vstart, vend))
                if best is None or (priority, conf) > best[:2]:
                    best = (priority, conf, value, source)
    if best is None:
        return Field()
    return Field(best[2], best[1], best[3].text)


def _pick_date(lines: Sequence[_Line], folded: Sequence[str], currency: str | None) -> Field[date]:
    matches = [
        (line, low, f) for line, low in zip(lines, folded, strict=True) for f in _dates_in(low)
    ]
    # Day/month order: other dates on the page that can only be read one way, else the currency.
    votes = {True: 0, False: 0}
    for _, _, f in matches:
        if f.kind == "dmy?" and f.parts[1] != ".":
            a, b = int(f.parts[0]), int(f.parts[2])
            if a > 12 >= b:
                votes[True] += 1
            elif b > 12 >= a:
                votes[False] += 1
    day_first: bool | None = None
    cue_conf = 0
    if votes[True] != votes[False]:
        day_first, cue_conf = votes[True] > votes[False], 90
    elif currency:
        day_first, cue_conf = currency != "USD", 75
    best: tuple[int, int, date, _Line] | None = None
    previous_end: dict[int, int] = {}
    for order, (line, low, f) in enumerate(matches):
        context_start = max(_label_start(line, f.start), previous_end.get(id(line), 0))
        context = low[context_start : f.start]
        previous_end[id(line)] = f.end
        if _DATE_NOT.search(context):
            continue
        if _DATE_LABEL_STRONG.search(context):
            label_conf = 95
        elif _DATE_LABEL.search(context):
            label_conf = 88
        else:
            label_conf = 60
        value, order_conf = _resolve_date(f, day_first, cue_conf)
        if value is None:
            continue
        sure = min(label_conf, order_conf, f.certainty)
        conf = _field_conf(sure, line.confidence(f.start, f.end))
        rank = label_conf * 1000 - order  # the best label first, then the earliest date
        if best is None or rank > best[0]:
            best = (rank, conf, value, line)
    if best is None:
        return Field()
    return Field(best[2], best[1], best[3].text)


def _clean_name(cell: str) -> str:
    """A name without the specks and rules OCR read around it ("Acme Ltd___." -> "Acme Ltd")."""
    name = re.sub(r"[\s_~|:;,-]*[_~|][\W_]*$", "", cell.strip())
    words = name.split()
    while words and not re.search(r"\w", words[-1]):
        words.pop()
    while words and not re.search(r"\w", words[0]):
        words.pop(0)
    name = " ".join(words).strip(" :;,|_~-\u201c\u201d\"'")
    for opening, closing in ("()", "[]"):  # a bracket without its partner is a speck
        if name.startswith(opening) and closing not in name:
            name = name[1:]
        if name.endswith(closing) and opening not in name:
            name = name[:-1]
    return name.strip()


def _pick_issuer(lines: Sequence[_Line], folded: Sequence[str]) -> Field[str]:
    for i, (line, low) in enumerate(zip(lines, folded, strict=True)):
        m = _ISSUER_LABEL.search(low)
        if m:
            value = _clean_name(_CELL_BREAK.split(line.text[m.end() :])[0])
            if not value and i + 1 < len(lines):
                line = lines[i + 1]
                value = _clean_name(_CELL_BREAK.split(line.text.strip())[0])
            if value:
                return Field(value, _field_conf(90, line.confidence()), line.text)
    candidates: list[tuple[str, _Line, bool]] = []
    for line, low in list(zip(lines, folded, strict=True))[:15]:
        if _BUYER.search(low) or len(_TABLE_HEAD.findall(low)) > 1:
            break  # the seller's block ends where the customer's or the items begin
        previous: str | None = None
        for cell in _CELL_BREAK.split(line.text):
            name = _clean_name(cell)
            low_cell = _fold(name)
            if previous and _COMPANY.fullmatch(low_cell) and candidates[-1][0] == previous:
                # "Alpenrose Kommunik   GmbH": OCR split the name at a wide gap
                candidates[-1] = (f"{previous} {name}", line, True)
                continue
            previous = None
            if (
                len(re.findall(r"[^\W\d_]", name)) < 3
                or _TITLE.search(low_cell)
                or _ADDRESS.search(low_cell)
                or _first_label(low_cell, _TOTAL_LABELS)
                or _first_label(low_cell, _NUMBER_LABELS)
                or _DATE_LABEL.search(low_cell)
                or _dates_in(low_cell)
                or _CODE.fullmatch(name)
                or any(len(a.digits) > 2 for a in _amounts(name))
            ):
                continue
            candidates.append((name, line, bool(_COMPANY.search(low_cell))))
            previous = name
    if not candidates:
        return Field()
    name, line, company = next((c for c in candidates if c[2]), candidates[0])
    start = max(0, line.text.find(name))
    conf = 85 if company else 65
    return Field(name, _field_conf(conf, line.confidence(start, start + len(name))), line.text)


def _extract(lines: Sequence[_Line]) -> tuple[dict[str, Field[Any]], list[str]]:
    lines = [line for line in lines if line.text.strip()]
    folded = [_fold(line.text) for line in lines]
    total, currency, notes = _pick_total(lines, folded)
    fields: dict[str, Field[Any]] = {
        "issuer": _pick_issuer(lines, folded),
        "number": _pick_number(lines, folded),
        "issued_on": _pick_date(lines, folded, currency.value),
        "total": total,
        "currency": currency,
    }
    return fields, notes


def _text_lines(text: str) -> list[_Line]:
    text = unicodedata.normalize("NFC", text)
    return [_Line(_normalise(raw).rstrip()) for raw in text.splitlines()]


def extract_fields(text: str) -> InvoiceReading:
    """Issuer, number, date, total and currency from an invoice's text (one line per line;
    wide gaps between columns may be written as two or more spaces)."""
    started = time.perf_counter()
    lines = _text_lines(text)
    fields, notes = _extract(lines)
    return InvoiceReading(
        **fields,
        pages_read=1,
        pages_total=1,
        method="text",
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
        text="\n".join(line.text for line in lines)[:TEXT_CAP],
    )


# --- images: upright, straight, the right size ------------------------------------------------


def _otsu(histogram: Sequence[int]) -> int:
    total = sum(histogram)
    weighted = sum(i * h for i, h in enumerate(histogram))
    below = below_sum = 0
    best, threshold = -1.0, 128
    for t, count in enumerate(histogram):
        below += count
        if not below:
            continue
        above = total - below
        if not above:
            break
        below_sum += t * count
        spread = below * above * (below_sum / below - (weighted - below_sum) / above) ** 2
        if spread > best:
            best, threshold = spread, t
    return threshold


def _row_profile(ink: Image.Image) -> bytes:
    """Mean ink per row (0-255): Pillow's box filter does the summing."""
    return ink.resize((1, ink.height), Image.Resampling.BOX).tobytes()


def _sharpness(profile: bytes) -> float:
    """How crisply rows alternate between text and blank: highest when lines are horizontal."""
    return sum((a - b) ** 2 for a, b in itertools.pairwise(profile)) / max(1, len(profile))


def _text_rows(profile: bytes) -> list[tuple[int, int]]:
    """Runs of rows that carry ink: the text lines (start, end)."""
    if not profile:
        return []
    threshold = 2  # ~1% of the row inked: sparse lines like "An:" count, specks do not
    rows, start = [], None
    for i, value in enumerate([*profile, 0]):
        if value > threshold and start is None:
            start = i
        elif value <= threshold and start is not None:
            if i - start >= 3:
                rows.append((start, i))
            start = None
    return rows


def _upside_down_score(ink: Image.Image) -> float:
    """Latin text has more ink above the middle of a line (capitals, digits, ascenders) than
    below it (few descenders): the weighted offset of each line's ink from its middle is
    positive on an upright page and negative on one turned upside down."""
    profile = _row_profile(ink)
    score = weight = 0.0
    for start, end in _text_rows(profile):
        segment = profile[start:end]
        mass = sum(segment)
        if not mass:
            continue
        centre = sum(i * v for i, v in enumerate(segment)) / mass
        score += (centre - (end - start - 1) / 2) / (end - start) * mass
        weight += mass
    return score / weight if weight else 0.0


@dataclass(frozen=True)
class _Layout:
    turn: int  # degrees counter-clockwise: 0, 90, 180, 270
    skew: float  # degrees counter-clockwise, applied after the turn
    line_px: float  # text line height in the original image's pixels (0: no text found)


def _layout(gray: Image.Image) -> _Layout:
    """Orientation, skew and text size of a page, from ink profiles of a small copy."""
    factor = min(1.0, _LAYOUT_SIZE / max(gray.size))
    small = gray.resize(
        (max(1, round(gray.width * factor)), max(1, round(gray.height * factor))),
        Image.Resampling.BOX,
    )
    threshold = _otsu(small.histogram())
    ink = small.point([255 if v <= threshold else 0 for v in range(256)])

    def sharpness(angle: float) -> float:
        turned = ink.rotate(angle, resample=Image.Resampling.NEAREST, expand=True)
        return _sharpness(_row_profile(turned))

    # Lines across (0) or down (90) the page, then the skew: whole degrees, then halves, quarters.
    turn = max((0, 90), key=lambda t: max(sharpness(t + d) for d in (-3, 0, 3)))
    skew = max(range(-5, 6), key=lambda d: sharpness(turn + d))
    for step in (0.5, 0.25):
        skew = max((skew - step, skew, skew + step), key=lambda d: sharpness(turn + d))
    upright = ink.rotate(turn + skew, resample=Image.Resampling.NEAREST, expand=True)
    if _upside_down_score(upright) < -0.008:
        turn += 180
    heights = [end - start for start, end in _text_rows(_row_profile(upright))]
    line_px = statistics.median(heights) / factor if heights else 0.0
    return _Layout(turn, skew, line_px)


def _prepare(gray: Image.Image, layout: _Layout, flip: bool = False) -> Image.Image:
    """The page turned upright, straightened, and scaled to the line height Tesseract likes."""
    scale = _TARGET_LINE_PX / layout.line_px if layout.line_px else 1.0
    scale = min(3.0, max(0.3, scale))
    if 0.85 <= scale <= 1.15:
        scale = 1.0  # close enough: resampling costs time and sharpness
    if gray.width * gray.height * scale * scale > _OCR_MAX_PIXELS:
        scale = math.sqrt(_OCR_MAX_PIXELS / (gray.width * gray.height))
    image = gray
    if scale != 1.0:
        size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
        resample = Image.Resampling.LANCZOS if scale > 1 else Image.Resampling.BOX
        image = gray.resize(size, resample)
    turn = (layout.turn + (180 if flip else 0)) % 360
    if turn:
        image = image.transpose(
            {
                90: Image.Transpose.ROTATE_90,
                180: Image.Transpose.ROTATE_180,
                270: Image.Transpose.ROTATE_270,
            }[turn]
        )
    if abs(layout.skew) >= 0.25:
        image = image.rotate(
            layout.skew, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255
        )
    return image


# --- OCR --------------------------------------------------------------------------------------


def _tesseract(image: Image.Image, deadline: float) -> dict[str, list[Any]]:
    remaining = deadline - time.monotonic()
    if remaining <= 0.5:
        raise TimeoutError
    with tempfile.TemporaryDirectory(prefix="mdfledger-ocr-") as folder:
        path = os.path.join(folder, "page.bmp")  # uncompressed: fastest to write and read
        image.save(path, "BMP")
        try:
            return pytesseract.image_to_data(
                path,
                lang="eng",
                config=_TESSERACT_CONFIG,
                output_type=pytesseract.Output.DICT,
                timeout=remaining,
            )
        except pytesseract.TesseractNotFoundError as error:
            raise Unreadable(f"Tesseract is not installed on this server: {error}") from None
        except RuntimeError as error:
            if "timeout" in str(error).lower():
                raise TimeoutError from None
            raise Unreadable(f"Tesseract could not read the page: {error}") from None


def _ocr_lines(data: dict[str, list[Any]]) -> list[_Line]:
    """Tesseract's words regrouped into rows across the whole page width, so a label and its
    amount far to the right end up on one line (with a wide gap) even when Tesseract put them
    in different blocks."""
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, text in enumerate(data["text"]):
        conf = float(data["conf"][i])
        word = str(text).strip()
        if not word or conf < 0 or (conf < 50 and not re.search(r"\w", word)):
            continue  # specks read as punctuation
        groups.setdefault(
            (data["block_num"][i], data["par_num"][i], data["line_num"][i]), []
        ).append(i)
    pieces = []
    for indexes in groups.values():
        top = min(data["top"][i] for i in indexes)
        bottom = max(data["top"][i] + data["height"][i] for i in indexes)
        pieces.append((top, bottom, indexes))
    pieces.sort(key=lambda p: (p[0] + p[1]) / 2)
    rows: list[list[Any]] = []  # [top, bottom, indexes]
    for top, bottom, indexes in pieces:
        if rows:
            row = rows[-1]
            overlap = min(row[1], bottom) - max(row[0], top)
            if overlap > 0.5 * min(row[1] - row[0], bottom - top):
                row[0], row[1] = min(row[0], top), max(row[1], bottom)
                row[2] = row[2] + indexes
                continue
        rows.append([top, bottom, list(indexes)])
    lines = []
    for *_, indexes in rows:
        indexes.sort(key=lambda i: data["left"][i])
        heights = sorted(data["height"][i] for i in indexes)
        gap_wide = 1.2 * heights[len(heights) // 2]
        text, words, previous_right = "", [], None
        for i in indexes:
            word = _normalise(unicodedata.normalize("NFC", str(data["text"][i]).strip()))
            left = data["left"][i]
            if previous_right is not None:
                text += "   " if left - previous_right > gap_wide else " "
            words.append(
                _Word(
                    len(text),
                    len(text) + len(word),
                    round(float(data["conf"][i])),
                    left,
                    left + data["width"][i],
                )
            )
            text += word
            previous_right = left + data["width"][i]
        lines.append(_Line(text, tuple(words)))
    return lines


def _mean_conf(lines: Sequence[_Line]) -> float:
    confs = [w.conf for line in lines for w in line.words if w.end - w.start >= 3]
    return statistics.fmean(confs) if confs else 0.0


def _ocr_page(gray: Image.Image, deadline: float) -> list[_Line]:
    layout = _layout(gray)
    if not layout.line_px:
        return []  # a blank page
    lines = _ocr_lines(_tesseract(_prepare(gray, layout), deadline))
    if _mean_conf(lines) < 60 and deadline - time.monotonic() > 2:
        # Perhaps upside down after all: read it turned over and keep the surer reading.
        turned = _ocr_lines(_tesseract(_prepare(gray, layout, flip=True), deadline))
        if _mean_conf(turned) > _mean_conf(lines) + 10:
            lines = turned
    return lines


# --- reading files ----------------------------------------------------------------------------


def _kind(data: bytes) -> str:
    if not data:
        raise Unreadable("the file is empty")
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise Unreadable("the file is not a PDF or an image (PNG, JPEG, TIFF)")


def _megapixels(pixels: float) -> str:
    return (
        f"{pixels / 1_000_000:,.0f} megapixels" if pixels >= 1_000_000 else f"{pixels:,.0f} pixels"
    )


def _open_image(data: bytes, kind: str, max_pixels: int) -> Image.Image:
    if kind == "png" and len(data) >= 24:  # the size is in the header: refuse before decoding
        width, height = struct.unpack(">II", data[16:24])
        if width * height > max_pixels:
            raise Unreadable(
                f"the image is too large to read: {width:,} x {height:,} pixels "
                f"({_megapixels(width * height)}; the limit is {_megapixels(max_pixels)})"
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=("PNG", "JPEG", "TIFF", "WEBP"))
            width, height = image.size
            if width * height > max_pixels:
                raise Unreadable(
                    f"the image is too large to read: {width:,} x {height:,} pixels "
                    f"({_megapixels(width * height)}; the limit is {_megapixels(max_pixels)})"
                )
            image.load()
    except Image.DecompressionBombError as error:
        found = re.search(r"\((\d+) pixels\)", str(error))
        size = f" ({_megapixels(int(found.group(1)))})" if found else ""
        raise Unreadable(
            f"the image is too large to read{size}; the limit is {_megapixels(max_pixels)}"
        ) from None
    except (OSError, SyntaxError, ValueError, struct.error) as error:
        raise Unreadable(f"the image file is damaged or incomplete: {error}") from None
    return image


def _grayscale(image: Image.Image) -> Image.Image:
    with contextlib.suppress(Exception):  # a broken EXIF block must not stop the reading
        image = ImageOps.exif_transpose(image) or image  # phone pictures stored sideways
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("L")


def _pdf_pages(
    data: bytes, max_pages: int, max_pixels: int, *, render: bool = False
) -> tuple[list[list[_Line] | Image.Image], int, list[str]]:
    """Each page read: its text layer when it has real text (unless `render`), else the page
    rendered in grey, at most `_RENDER_MAX_PIXELS` whatever its MediaBox says."""
    notes: list[str] = []
    pages: list[list[_Line] | Image.Image] = []
    with _PDFIUM:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as error:
            code = getattr(error, "err_code", None)
            if code == pdfium.raw.FPDF_ERR_PASSWORD:
                raise Unreadable("the PDF is encrypted with a password") from None
            if code == pdfium.raw.FPDF_ERR_SECURITY:
                raise Unreadable("the PDF uses an unsupported security handler") from None
            raise Unreadable(f"the file is not a readable PDF: {error}") from None
        try:
            total = len(pdf)
            if total == 0:
                raise Unreadable("the PDF has no pages")
            for index in range(min(total, max_pages)):
                page = pdf[index]
                try:
                    if not render:
                        textpage = page.get_textpage()
                        text = textpage.get_text_range()
                        textpage.close()
                        if len(re.findall(r"[^\W_]", text)) >= 20:
                            pages.append(_text_lines(text))
                            continue
                    width, height = page.get_size()
                    scale = RENDER_DPI / 72
                    limit = min(max_pixels, _RENDER_MAX_PIXELS)
                    if width * height * scale * scale > limit:
                        scale = math.sqrt(limit / (width * height))
                        notes.append(
                            f"page {index + 1} is unusually large "
                            f"({width / 72 * 2.54:,.0f} x {height / 72 * 2.54:,.0f} cm): "
                            f"read at {scale * 72:.0f} dpi"
                        )
                    bitmap = page.render(scale=scale, grayscale=True)
                    pages.append(bitmap.to_pil().convert("L"))
                finally:
                    page.close()
        except pdfium.PdfiumError as error:
            raise Unreadable(f"the file is not a readable PDF: {error}") from None
        finally:
            pdf.close()
    if total > max_pages:
        notes.append(f"read the first {max_pages} of {total} pages")
    return pages, total, notes


def _image_pages(
    data: bytes, kind: str, max_pages: int, max_pixels: int
) -> tuple[list[Image.Image], int, list[str]]:
    image = _open_image(data, kind, max_pixels)
    frames = getattr(image, "n_frames", 1)
    pages = []
    for index in range(min(frames, max_pages)):
        image.seek(index)
        pages.append(_grayscale(image))
    notes = [f"read the first {max_pages} of {frames} pages"] if frames > max_pages else []
    return pages, frames, notes


def _read_pages(
    pages: Sequence[list[_Line] | Image.Image], deadline: float, timeout: float
) -> tuple[list[_Line], int, list[str]]:
    """The lines of every page (OCR for images) until the time runs out."""
    lines: list[_Line] = []
    notes: list[str] = []
    blank: list[str] = []
    read = 0
    for number, page in enumerate(pages, 1):
        if isinstance(page, list):
            found = page
        else:
            try:
                found = _ocr_page(page, deadline)
            except TimeoutError:
                if number == 1:
                    raise Unreadable(
                        f"reading the invoice took longer than {timeout:g} s"
                    ) from None
                notes.append(f"stopped after {read} pages: reading took longer than {timeout:g} s")
                break
        if not found:
            blank.append(str(number))
        lines += found
        read = number
    if blank:
        notes.append(f"no text found on page {', '.join(blank)}")
    return lines, read, notes


def read_invoice(
    data: bytes,
    *,
    max_pages: int = 5,
    max_pixels: int = 50_000_000,
    timeout: float = 30.0,
) -> InvoiceReading:
    """Read an invoice (PDF, PNG, JPEG, TIFF) and pick out its fields. Raises `Unreadable` with
    a reason for finance when nothing can be read. Reads at most `max_pages` pages, refuses
    images over `max_pixels` before decoding them, and stops OCR after `timeout` seconds (the
    pages read by then are kept, with a note)."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    kind = _kind(data)
    pages: list[list[_Line] | Image.Image]
    if kind == "pdf":
        pages, total_pages, notes = _pdf_pages(data, max_pages, max_pixels)
    else:
        images, total_pages, notes = _image_pages(data, kind, max_pages, max_pixels)
        pages = list(images)
    method = "ocr" if any(isinstance(page, Image.Image) for page in pages) else "text"
    lines, pages_read, read_notes = _read_pages(pages, deadline, timeout)
    notes += read_notes
    fields, field_notes = _extract(lines)
    if kind == "pdf" and method == "text" and fields["total"].value is None:
        # A text layer without a total (a scan with a stamped header, text in broken fonts):
        # what the page shows may say more than its text layer.
        try:
            rendered, _, _ = _pdf_pages(data, max_pages, max_pixels, render=True)
            ocr_lines, ocr_pages, _ = _read_pages(rendered, deadline, timeout)
        except Unreadable:  # out of time: the text layer's reading stands
            ocr_lines, ocr_pages = [], 0
        ocr_fields, ocr_notes = _extract(ocr_lines)
        if ocr_fields["total"].value is not None:
            notes.append("the text layer has no total: the pages were read by OCR")
            lines, pages_read, fields, field_notes = ocr_lines, ocr_pages, ocr_fields, ocr_notes
            method = "ocr"
    if not any(line.text.strip() for line in lines):
        raise Unreadable("no text could be read from the file")
    return InvoiceReading(
        **fields,
        pages_read=pages_read,
        pages_total=total_pages,
        method=method,
        seconds=time.perf_counter() - started,
        notes=tuple(notes + field_notes),
        text="\n".join(line.text for line in lines)[:TEXT_CAP],
    )


# --- judging the claim ------------------------------------------------------------------------


def _company_key(name: str) -> str:
    """A name for comparing companies: folded, without legal form and punctuation."""
    folded = _fold(name).replace("&", " and ")
    folded = re.sub(r"[^\w\s]", " ", _COMPANY.sub(" ", folded))
    return " ".join(folded.split())


def same_company(a: str, b: str) -> bool:
    """Whether two names most likely mean the same company (fuzzy: OCR and legal forms)."""
    key_a, key_b = _company_key(a), _company_key(b)
    return bool(key_a and key_b) and fuzz.ratio(key_a, key_b) >= 90


def _money_text(minor: int, currency: str) -> str:
    return f"{display_amount(minor, currency)} {currency}"


def _which(reading: InvoiceReading, index: int, count: int) -> str:
    if reading.number.value:
        return f"Invoice {reading.number.value}"
    return "The invoice" if count == 1 else f"Invoice {index + 1} of {count}"


def compare_invoice(
    readings: Sequence[InvoiceReading],
    *,
    currency: str,
    actual_cost: int,
    starts_on: date,
    ends_on: date,
    partner_name: str,
    tolerance_bp: int,
    issued_grace_days: int = 30,
    unreadable: Sequence[tuple[str, str]] = (),
) -> Finding:
    """Do the claim's invoices prove its cost? PASS when their totals add up to `actual_cost`
    (within `tolerance_bp` basis points of it) in the claim's currency, each is dated within
    `issued_grace_days` of the activity, and none was issued by the partner itself. FAIL on a
    clear mismatch read with confidence; INCONCLUSIVE when something needed was not read (or
    not read surely enough), so a person must look. `unreadable` lists (filename, reason) of
    files that could not be read at all."""
    count = len(readings)
    tolerance = actual_cost * tolerance_bp // 10_000
    earliest = starts_on - timedelta(days=issued_grace_days)
    latest = ends_on + timedelta(days=issued_grace_days)
    evidence: dict[str, Any] = {
        "documents": [reading.as_dict() for reading in readings],
        "unreadable": [{"filename": name, "reason": reason} for name, reason in unreadable],
        "currency": currency,
        "claimed_cost": actual_cost,
        "claimed_cost_formatted": display_amount(actual_cost, currency),
        "tolerance": tolerance,
        "tolerance_bp": tolerance_bp,
        "dates_allowed": {"from": earliest.isoformat(), "to": latest.isoformat()},
    }
    if not readings:
        if not unreadable:
            return Finding(Outcome.INCONCLUSIVE, 0, "No invoice to check", evidence)
        if len(unreadable) == 1:
            summary = f"Could not read the invoice: {unreadable[0][1]}"
        else:
            summary = f"Could not read {len(unreadable)} invoices: " + "; ".join(
                f"{name}: {reason}" for name, reason in unreadable
            )
        return Finding(Outcome.INCONCLUSIVE, 0, summary, evidence)

    failures: list[str] = []
    unsure: list[str] = [f"Could not read {name}: {reason}" for name, reason in unreadable]
    total_sum = 0
    totals_known = True
    score_cap = 100
    for index, reading in enumerate(readings):
        which = _which(reading, index, count)
        code, total = reading.currency, reading.total
        if code.value is None or code.confidence < LOW_CONFIDENCE:
            unsure.append(f"{which}: the currency could not be read with confidence")
            totals_known = False
        elif code.value != currency:
            failures.append(f"{which} is in {code.value}, the claim is in {currency}")
            totals_known = False
            score_cap = min(score_cap, 20)
        if total.value is None or total.confidence < LOW_CONFIDENCE:
            sure = f" (confidence {total.confidence})" if total.value is not None else ""
            unsure.append(f"{which}: the total could not be read with confidence{sure}")
            totals_known = False
        elif totals_known:
            total_sum += total.value
        issued = reading.issued_on
        if issued.value is None or issued.confidence < LOW_CONFIDENCE:
            unsure.append(f"{which}: the invoice date could not be read with confidence")
        elif issued.value < earliest:
            days = (starts_on - issued.value).days
            failures.append(
                f"{which} is dated {issued.value.isoformat()}, {days} days before the activity "
                "started"
            )
            score_cap = min(score_cap, 40)
        elif issued.value > latest:
            days = (issued.value - ends_on).days
            failures.append(
                f"{which} is dated {issued.value.isoformat()}, {days} days after the activity ended"
            )
            score_cap = min(score_cap, 40)
        issuer = reading.issuer
        if issuer.value is None or issuer.confidence < LOW_CONFIDENCE:
            unsure.append(f"{which}: the issuer could not be read with confidence")
        elif same_company(issuer.value, partner_name):
            failures.append(f"{which} was issued by the partner itself ({issuer.value})")
            score_cap = min(score_cap, 10)

    closeness = 0
    if totals_known:
        difference = total_sum - actual_cost
        evidence.update(
            sum=total_sum,
            sum_formatted=display_amount(total_sum, currency),
            difference=difference,
        )
        what = "Invoice total" if count == 1 else f"The {count} invoices' total"
        sum_text = _money_text(total_sum, currency)
        if difference == 0:
            closeness = 100
            headline = f"{what} {sum_text} matches the claimed cost"
        elif abs(difference) <= tolerance:
            closeness = 99 - round(9 * abs(difference) / max(tolerance, 1))
            headline = (
                f"{what} {sum_text} is within {tolerance_bp / 100:g}% of the claimed cost of "
                f"{_money_text(actual_cost, currency)}"
            )
        else:
            closeness = max(0, 90 - round(100 * abs(difference) / max(actual_cost, 1)))
            side = "below" if difference < 0 else "above"
            headline = (
                f"{what} {sum_text} is {_money_text(abs(difference), currency)} {side} the "
                f"claimed cost of {_money_text(actual_cost, currency)}"
            )
            failures.insert(0, headline)
            headline = ""
    else:
        headline = ""

    if failures:
        outcome = Outcome.FAIL
        sentences = failures + unsure
    elif unsure:
        outcome = Outcome.INCONCLUSIVE
        sentences = ([headline] if headline else []) + unsure
        sure = [r.total.confidence for r in readings if r.total.value is not None]
        score_cap = min(score_cap, min(sure) if sure and totals_known else 0)
    else:
        outcome = Outcome.PASS
        sentences = [headline]
    evidence["problems"] = failures + unsure
    return Finding(outcome, min(closeness, score_cap), "; ".join(sentences), evidence)
