"""A generated set of invoices with known contents, for the OCR tests and `mdfledger bench ocr`.

Every sample is real bytes a partner could upload (PDF with a text layer, PDF holding a scan,
PNG, JPEG) and carries what a careful reader would find on it. The set is deliberately not easy:
several fonts, layouts, languages, currencies, number and date formats, and scan damage (noise,
blur, skew, rotation, low resolution, JPEG artefacts, EXIF-rotated phone pictures). It is the same
bytes for the same seed, so accuracy figures can be compared run to run.

Also here: the bad inputs the reader must refuse politely (encrypted, very long, huge images).
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import cache

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from mdfledger.demo_proof import invoice_pdf, pdf_document
from mdfledger.money import format_amount, minor_units


@dataclass(frozen=True)
class Expected:
    """What the invoice says: the truth the reader is measured against."""

    issuer: str
    number: str
    issued_on: date
    total: int  # minor units of `currency`
    currency: str


@dataclass(frozen=True)
class Sample:
    name: str  # the variant, e.g. "07-png-skew-two_column-de-EUR-serif"
    data: bytes
    media_type: str
    expected: Expected


# How the document reaches us. Every kind appears in any set of 11 or more samples.
KINDS = (
    "text-pdf",
    "demo-pdf",
    "png-clean",
    "png-scan",
    "png-skew",
    "png-rot90",
    "png-rot180",
    "png-lowres",
    "jpeg-artefacts",
    "jpeg-exif",
    "image-pdf",
)
LAYOUTS = ("classic", "table", "two_column", "amount_box")


@dataclass(frozen=True)
class _Style:
    """A country's way of writing an invoice: labels, numbers, dates, currencies, sellers."""

    key: str
    lang: str  # "en", "de", "fr"
    currencies: tuple[str, ...]
    group: str  # thousands separator
    decimal: str
    dates: tuple[str, ...]  # formats understood by _format_date
    issuers: tuple[str, ...]
    address: tuple[str, str] = ("221 Market Street", "Springfield, IL 62701")


_STYLES = (
    _Style(
        "us",
        "en",
        ("USD",),
        ",",
        ".",
        ("mdy/", "Month d, yyyy", "Mon d, yyyy", "iso"),
        ("Bluepeak Marketing Inc.", "Greenleaf Digital LLC", "Harbor & Vine Events Co."),
        ("1450 Harbor Blvd, Suite 300", "San Diego, CA 92101"),
    ),
    _Style(
        "uk",
        "en",
        ("GBP",),
        ",",
        ".",
        ("dmy/", "d Month yyyy", "d Mon yyyy", "iso"),
        ("Brightline Events Ltd", "Kestrel & Finch Ltd", "Thameside Print plc"),
        ("8 Clerkenwell Road", "London EC1M 5PQ"),
    ),
    _Style(
        "de",
        "de",
        ("EUR",),
        ".",
        ",",
        ("dmy.", "d. Monat yyyy"),
        ("Northwind Druck GmbH", "Messebau Keller KG", "Rheinwerk Medien GmbH"),
        ("Hauptstraße 41", "10115 Berlin"),
    ),
    _Style(
        "fr",
        "fr",
        ("EUR",),
        "\u202f",
        ",",
        ("dmy/", "d mois yyyy"),
        ("Atelier Lumière SAS", "Castellan Média SARL", "Imprimerie Durand SA"),
        ("8 rue des Lilas", "69002 Lyon"),
    ),
    _Style(
        "ch",
        "en",
        ("CHF",),
        "'",
        ".",
        ("dmy.", "iso"),
        ("Helvetic Expo AG", "Alpenrose Kommunikation GmbH"),
        ("Bahnhofstrasse 12", "8001 Zürich"),
    ),
    _Style(
        "jp",
        "en",
        ("JPY",),
        ",",
        ".",
        ("iso", "ymd/"),
        ("Sakura Displays K.K.", "Tokyo Booth Works Co., Ltd."),
        ("2-4-1 Shibakoen, Minato-ku", "Tokyo 105-0011"),
    ),
    _Style(
        "se",
        "en",
        ("SEK", "NOK", "DKK"),
        " ",
        ",",
        ("iso",),
        ("Nordljus Reklam AB", "Fjord Media AS", "Kobber Event ApS"),
        ("Sveavägen 44", "111 34 Stockholm"),
    ),
    _Style(
        "eu",
        "en",
        ("EUR",),
        ",",
        ".",
        ("d Month yyyy", "iso", "dmy/"),
        ("Van Dijk Events B.V.", "Celtic Print Ltd", "Baltic Stage OÜ"),
        ("Keizersgracht 112", "1015 CV Amsterdam"),
    ),
)

_LABELS = {
    "en": {
        "title": ("INVOICE", "Invoice", "TAX INVOICE"),
        "number": ("Invoice No.", "Invoice #", "Invoice number:", "Number:", "Invoice no:"),
        "date": ("Date:", "Invoice date:", "Issue date:", "Date of issue:"),
        "due": ("Due date:", "Payment due:"),
        "bill_to": ("Bill to:", "Invoice to:", "Billed to:"),
        "head": ("Description", "Qty", "Unit price"),
        "head_total": ("Amount", "Total", "Line total"),
        "paid": ("Amount paid", "Paid by card"),
        "balance": ("Balance due", "Amount outstanding"),
        "in_currency": "All amounts in {code}.",
        "subtotal": ("Subtotal", "Sub-total", "Net amount"),
        "tax": ("Tax ({rate})", "VAT {rate}", "Sales tax {rate}"),
        "total": ("Total", "Total due", "Grand total", "TOTAL", "Amount due"),
        "box": ("AMOUNT DUE", "Balance due", "Total due"),
        "footer": "Payment within 30 days. Thank you for your business.",
    },
    "de": {
        "title": ("RECHNUNG", "Rechnung"),
        "number": ("Rechnung Nr.", "Rechnungsnummer:", "Rechnungs-Nr.:"),
        "date": ("Datum:", "Rechnungsdatum:"),
        "due": ("Fällig am:", "Zahlbar bis:"),
        "bill_to": ("Rechnungsempfänger:", "An:"),
        "head": ("Beschreibung", "Menge", "Einzelpreis"),
        "head_total": ("Betrag", "Gesamt"),
        "paid": ("Bereits bezahlt",),
        "balance": ("Offener Betrag", "Restbetrag"),
        "in_currency": "Alle Beträge in {code}.",
        "subtotal": ("Zwischensumme", "Nettobetrag"),
        "tax": ("MwSt. {rate}", "USt. {rate}"),
        "total": ("Gesamtbetrag", "Rechnungsbetrag", "Gesamtsumme"),
        "box": ("Zu zahlen", "Gesamtbetrag"),
        "footer": "Zahlbar innerhalb von 30 Tagen ohne Abzug.",
    },
    "fr": {
        "title": ("FACTURE", "Facture"),
        "number": ("Facture n°", "Facture N°", "Numéro :"),
        "date": ("Date :", "Date de facture :"),
        "due": ("Échéance :", "À payer avant le :"),
        "bill_to": ("Facturé à :", "Client :"),
        "head": ("Désignation", "Qté", "Prix unitaire"),
        "head_total": ("Montant", "Total"),
        "paid": ("Déjà réglé",),
        "balance": ("Reste à payer", "Solde"),
        "in_currency": "Montants exprimés en {code}.",
        "subtotal": ("Total HT", "Montant HT"),
        "tax": ("TVA {rate}",),
        "total": ("Total TTC", "Net à payer", "Montant TTC"),
        "box": ("Net à payer", "Total TTC"),
        "footer": "Paiement à 30 jours. Merci de votre confiance.",
    },
}

_MONTHS = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "de": (
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ),
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
}

_ITEMS = (
    "Trade show booth rental",
    "Booth design and build",
    "Printed brochures (500)",
    "Search ads campaign, March",
    "Webinar hosting and recording",
    "E-mail campaign design",
    "Catering for 40 guests",
    "Roll-up banners (3)",
    "Event photography",
    "Lead scanner rental",
    "Sponsored newsletter slot",
    "Product demo video",
)
_PARTNERS = ("Contoso Partners LLC", "Fabrikam Solutions Ltd", "Tailspin Systems GmbH")

# Font families as (regular, bold) file names; Pillow finds them in the system font folders.
_FONT_FAMILIES = {
    "sans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    "serif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"),
    "mono": ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf"),
    "condensed": ("DejaVuSansCondensed.ttf", "DejaVuSansCondensed-Bold.ttf"),
    "liberation-sans": ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"),
    "liberation-serif": ("LiberationSerif-Regular.ttf", "LiberationSerif-Bold.ttf"),
}

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@cache
def available_fonts() -> tuple[str, ...]:
    """The font families installed here (DejaVu on most Linux systems; Liberation if present)."""
    found = []
    for family, (regular, bold) in _FONT_FAMILIES.items():
        try:
            ImageFont.truetype(regular, 10)
            ImageFont.truetype(bold, 10)
        except OSError:
            continue
        found.append(family)
    return tuple(found) or ("builtin",)


@cache
def _font(family: str, bold: bool, px: int) -> _Font:
    if family == "builtin":  # Pillow's own font: no TrueType files on this machine
        return ImageFont.load_default(size=px)
    return ImageFont.truetype(_FONT_FAMILIES[family][int(bold)], px)


# --- what an invoice says -------------------------------------------------------------------


@dataclass(frozen=True)
class _Invoice:
    style: _Style
    currency: str
    issuer: str
    number: str
    issued_on: date
    due_on: date
    partner: str
    items: tuple[tuple[str, int, int], ...]  # description, quantity, unit price (minor units)
    tax_bp: int  # basis points

    @property
    def subtotal(self) -> int:
        return sum(qty * unit for _, qty, unit in self.items)

    @property
    def tax(self) -> int:
        return (self.subtotal * self.tax_bp + 5_000) // 10_000  # half up

    @property
    def total(self) -> int:
        return self.subtotal + self.tax


def _number(rnd: random.Random, year: int) -> str:
    patterns: tuple[Callable[[], str], ...] = (
        lambda: f"INV-{rnd.randint(1, 9999):04d}",
        lambda: f"{year}-{rnd.randint(1, 999):04d}",
        lambda: f"RE-{year}-{rnd.randint(10, 999)}",
        lambda: f"F{year}/{rnd.randint(1, 999):03d}",
        lambda: f"A-{rnd.randint(10000, 99999)}",
        lambda: f"{rnd.randint(100000, 999999)}",
    )
    return rnd.choice(patterns)()


def _invoice(rnd: random.Random, style: _Style) -> _Invoice:
    currency = rnd.choice(style.currencies)
    scale = 10 ** minor_units(currency)
    if currency == "JPY":
        scale = 100  # yen amounts are in the thousands where other currencies are in tens
    issued = date(2025, 6, 1) + timedelta(days=rnd.randint(0, 400))
    # A wide range of totals: a few hundred to a few hundred thousand, to exercise grouping.
    magnitude = rnd.choice((1, 10, 100))
    items = tuple(
        (
            rnd.choice(_ITEMS),
            rnd.choice((1, 1, 1, 2, 3, 5)),
            rnd.randint(40, 2_500) * magnitude * scale
            + rnd.choice((0, 0, 50, 99, 25)) * scale // 100,
        )
        for _ in range(rnd.randint(1, 5))
    )
    return _Invoice(
        style=style,
        currency=currency,
        issuer=rnd.choice(style.issuers),
        number=_number(rnd, issued.year),
        issued_on=issued,
        due_on=issued + timedelta(days=30),
        partner=rnd.choice(_PARTNERS),
        items=items,
        tax_bp=rnd.choice((0, 700, 1_900, 2_000, 2_500, 810, 1_000)),
    )


def _format_number(minor: int, currency: str, style: _Style, *, text_pdf: bool = False) -> str:
    plain = format_amount(minor, currency)  # "1234.56"
    whole, _, frac = plain.partition(".")
    group = style.group
    if text_pdf and group == "\u202f":
        group = "\u00a0"  # Helvetica in a simple PDF has no narrow no-break space
    digits = []
    for i, ch in enumerate(reversed(whole)):
        if i and i % 3 == 0:
            digits.append(group)
        digits.append(ch)
    grouped = "".join(reversed(digits))
    return f"{grouped}{style.decimal}{frac}" if frac else grouped


_SYMBOLS = {"USD": "$", "GBP": "£", "EUR": "€", "JPY": "¥"}


def _money(
    inv: _Invoice, minor: int, rnd: random.Random, *, text_pdf: bool = False, plain: bool = False
) -> str:
    number = _format_number(minor, inv.currency, inv.style, text_pdf=text_pdf)
    if plain:
        return number  # the currency is stated once, elsewhere on the page
    symbol = _SYMBOLS.get(inv.currency)
    if text_pdf and symbol == "€":
        symbol = None  # the demo PDFs' Latin-1 text cannot carry the euro sign
    if symbol and rnd.random() < 0.6:
        return f"{number} {symbol}" if inv.style.lang in ("de", "fr") else f"{symbol}{number}"
    return f"{number} {inv.currency}" if rnd.random() < 0.6 else f"{inv.currency} {number}"


def _format_date(day: date, fmt: str, lang: str) -> str:
    months = _MONTHS[lang]
    name = months[day.month - 1]
    return {
        "iso": day.isoformat(),
        "mdy/": f"{day.month:02d}/{day.day:02d}/{day.year}",
        "dmy/": f"{day.day:02d}/{day.month:02d}/{day.year}",
        "dmy.": f"{day.day:02d}.{day.month:02d}.{day.year}",
        "ymd/": f"{day.year}/{day.month:02d}/{day.day:02d}",
        "Month d, yyyy": f"{name} {day.day}, {day.year}",
        "Mon d, yyyy": f"{name[:3]} {day.day}, {day.year}",
        "d Month yyyy": f"{day.day} {name} {day.year}",
        "d Mon yyyy": f"{day.day} {name[:3]} {day.year}",
        "d. Monat yyyy": f"{day.day}. {name} {day.year}",
        "d mois yyyy": f"{day.day} {name} {day.year}",
    }[fmt]


@dataclass(frozen=True)
class _Wording:
    """The strings one rendering of an invoice uses, chosen once so every layout agrees."""

    title: str
    number: str
    date: str
    due: str
    bill_to: str
    head: tuple[str, ...]  # description, quantity, unit price, line amount
    subtotal: str
    tax: str
    total: str
    box: str
    footer: str
    issued: str
    due_on: str
    amounts: dict[str, str]  # "subtotal", "tax", "total", "unit<i>", "item<i>" -> as shown
    paid: tuple[tuple[str, str], ...]  # "Amount paid" and "Balance due 0.00" on paid invoices
    currency_note: str | None  # "All amounts in CHF." when the amounts carry no currency
    body_pt: float


def _wording(inv: _Invoice, rnd: random.Random, *, text_pdf: bool = False) -> _Wording:
    labels = _LABELS[inv.style.lang]
    fmt = rnd.choice(inv.style.dates)
    rate = f"{inv.tax_bp / 100:g} %" if inv.style.lang != "en" else f"{inv.tax_bp / 100:g}%"
    plain = rnd.random() < 0.2

    def money(minor: int) -> str:
        return _money(inv, minor, rnd, text_pdf=text_pdf, plain=plain)

    amounts = {"subtotal": money(inv.subtotal), "tax": money(inv.tax), "total": money(inv.total)}
    for i, (_, qty, unit) in enumerate(inv.items):
        amounts[f"unit{i}"] = _format_number(unit, inv.currency, inv.style, text_pdf=text_pdf)
        amounts[f"item{i}"] = _format_number(qty * unit, inv.currency, inv.style, text_pdf=text_pdf)
    paid: tuple[tuple[str, str], ...] = ()
    if rnd.random() < 0.25:  # settled already: the balance is zero, the total is still the cost
        paid = (
            (rnd.choice(labels["paid"]), money(inv.total)),
            (rnd.choice(labels["balance"]), money(0)),
        )
    return _Wording(
        title=rnd.choice(labels["title"]),
        number=rnd.choice(labels["number"]),
        date=rnd.choice(labels["date"]),
        due=rnd.choice(labels["due"]),
        bill_to=rnd.choice(labels["bill_to"]),
        head=(*labels["head"], rnd.choice(labels["head_total"])),
        subtotal=rnd.choice(labels["subtotal"]),
        tax=rnd.choice(labels["tax"]).format(rate=rate),
        total=rnd.choice(labels["total"]),
        box=rnd.choice(labels["box"]),
        footer=labels["footer"],
        issued=_format_date(inv.issued_on, fmt, inv.style.lang),
        due_on=_format_date(inv.due_on, fmt, inv.style.lang),
        amounts=amounts,
        paid=paid,
        currency_note=labels["in_currency"].format(code=inv.currency) if plain else None,
        body_pt=rnd.choice((9, 10, 10, 11)),
    )


# --- drawing a page -------------------------------------------------------------------------


class _Page:
    """A white page drawn in inches, so the same layout renders at any resolution."""

    def __init__(self, dpi: int, family: str, size: tuple[float, float] = (8.5, 11.0)) -> None:
        self.dpi = dpi
        self.family = family
        self.image = Image.new("L", (round(size[0] * dpi), round(size[1] * dpi)), 255)
        self.draw = ImageDraw.Draw(self.image)

    def px(self, inches: float) -> int:
        return round(inches * self.dpi)

    def text(
        self, x: float, y: float, s: str, pt: float = 10, *, bold: bool = False, right: bool = False
    ) -> None:
        font = _font(self.family, bold, max(6, round(pt * self.dpi / 72)))
        anchor = "ra" if right else "la"
        self.draw.text((self.px(x), self.px(y)), s, fill=0, font=font, anchor=anchor)

    def line(self, x0: float, y0: float, x1: float, y1: float, width: float = 1.0) -> None:
        w = max(1, round(width * self.dpi / 150))
        self.draw.line((self.px(x0), self.px(y0), self.px(x1), self.px(y1)), fill=0, width=w)

    def box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        w = max(1, round(self.dpi / 100))
        rect = (self.px(x0), self.px(y0), self.px(x1), self.px(y1))
        self.draw.rectangle(rect, outline=0, width=w)

    def logo(self, x: float, y: float, initials: str) -> None:
        """A dark disc with white initials: the kind of mark OCR reads as noise."""
        box = (self.px(x), self.px(y), self.px(x + 0.55), self.px(y + 0.55))
        self.draw.ellipse(box, fill=40)
        font = _font(self.family, True, round(13 * self.dpi / 72))
        centre = (self.px(x + 0.275), self.px(y + 0.275))
        self.draw.text(centre, initials, fill=255, font=font, anchor="mm")


def _draw_items(page: _Page, inv: _Invoice, w: _Wording, y: float, grid: bool) -> float:
    cols = (0.8, 5.0, 6.3, 7.7)  # description left; the numbers right-aligned
    pt, step = w.body_pt, 0.3 * w.body_pt / 10
    if grid:
        page.box(0.7, y - 0.08, 7.8, y + step * (len(inv.items) + 1) + 0.02)
    page.text(cols[0], y, w.head[0], pt, bold=True)
    for col, head in zip(cols[1:], w.head[1:], strict=True):
        page.text(col, y, head, pt, bold=True, right=True)
    y += step
    page.line(0.7, y - 0.06, 7.8, y - 0.06)
    for i, (desc, qty, _) in enumerate(inv.items):
        page.text(cols[0], y, desc, pt)
        page.text(cols[1], y, str(qty), pt, right=True)
        page.text(cols[2], y, w.amounts[f"unit{i}"], pt, right=True)
        page.text(cols[3], y, w.amounts[f"item{i}"], pt, right=True)
        y += step
    if w.currency_note:
        page.text(cols[0], y + 0.1, w.currency_note, pt - 1)
        y += 0.3
    return y + 0.2


def _draw_totals(page: _Page, w: _Wording, y: float, grid: bool) -> float:
    pt, step = w.body_pt, 0.3 * w.body_pt / 10
    for label, amount in ((w.subtotal, w.amounts["subtotal"]), (w.tax, w.amounts["tax"])):
        page.text(4.6, y, label, pt)
        page.text(7.7, y, amount, pt, right=True)
        y += step
    if grid:
        page.line(4.5, y - 0.05, 7.8, y - 0.05, 2)
    page.text(4.6, y, w.total, pt + 2, bold=True)
    page.text(7.7, y, w.amounts["total"], pt + 2, bold=True, right=True)
    y += step + 0.1
    for label, amount in w.paid:
        page.text(4.6, y, label, pt)
        page.text(7.7, y, amount, pt, right=True)
        y += step
    return y + 0.4


def _draw_bill_to(page: _Page, inv: _Invoice, w: _Wording, x: float, y: float) -> None:
    page.text(x, y, w.bill_to, 10, bold=True)
    page.text(x, y + 0.22, inv.partner, 10)
    page.text(x, y + 0.42, "Attn: Accounts Payable", 10)
    page.text(x, y + 0.62, "500 Commerce Way", 10)


def _render(
    inv: _Invoice, w: _Wording, layout: str, family: str, dpi: int, logo: bool = False
) -> Image.Image:
    page = _Page(dpi, family)
    address = inv.style.address
    if logo:  # in the top margin, above the seller's name
        page.logo(0.8, 0.05, "".join(word[0] for word in inv.issuer.split()[:2]).upper())
    if layout == "two_column":
        page.text(0.8, 0.8, inv.issuer, 16, bold=True)
        for i, line in enumerate(address):
            page.text(0.8, 1.15 + 0.2 * i, line, 9)
        page.text(7.7, 0.8, w.title, 20, bold=True, right=True)
        meta = ((w.number, inv.number), (w.date, w.issued), (w.due, w.due_on))
        for i, (label, value) in enumerate(meta):
            page.text(4.9, 1.3 + 0.25 * i, label, 10)
            page.text(7.7, 1.3 + 0.25 * i, value, 10, right=True)
        _draw_bill_to(page, inv, w, 0.8, 2.3)
        y = _draw_items(page, inv, w, 3.5, grid=False)
        _draw_totals(page, w, y, grid=False)
    elif layout == "amount_box":
        page.text(0.8, 0.7, w.title, 22, bold=True)
        page.text(0.8, 1.2, inv.issuer, 13, bold=True)
        for i, line in enumerate(address):
            page.text(0.8, 1.45 + 0.2 * i, line, 9)
        page.box(5.2, 0.7, 7.8, 1.7)
        page.text(5.4, 0.82, w.box, 10, bold=True)
        page.text(7.6, 1.15, w.amounts["total"], 18, bold=True, right=True)
        page.text(5.2, 1.9, f"{w.number} {inv.number}", 10)
        page.text(5.2, 2.15, f"{w.date} {w.issued}", 10)
        _draw_bill_to(page, inv, w, 0.8, 2.3)
        y = _draw_items(page, inv, w, 3.5, grid=True)
        _draw_totals(page, w, y, grid=True)
    else:  # classic and table: seller top left, title top right, meta under the title
        page.text(0.8, 0.8, inv.issuer, 18, bold=True)
        for i, line in enumerate(address):
            page.text(0.8, 1.2 + 0.2 * i, line, 9)
        page.text(7.7, 0.8, w.title, 18, bold=True, right=True)
        page.text(7.7, 1.25, f"{w.number} {inv.number}", 10, right=True)
        page.text(7.7, 1.5, f"{w.date} {w.issued}", 10, right=True)
        page.text(7.7, 1.75, f"{w.due} {w.due_on}", 10, right=True)
        _draw_bill_to(page, inv, w, 0.8, 2.2)
        y = _draw_items(page, inv, w, 3.4, grid=layout == "table")
        _draw_totals(page, w, y, grid=layout == "table")
    page.text(0.8, 10.2, w.footer, 8)
    return page.image


_TERMS = (
    "Terms and conditions",
    "1. Invoices are payable within 30 days of the invoice date.",
    "2. Interest of 1.5% per month is charged on the total amount outstanding.",
    "3. Disputes must be raised in writing within 14 days of receipt.",
    "4. Goods remain our property until the invoice is paid in full.",
)


def _terms_page(dpi: int, family: str) -> Image.Image:
    """A second page of small print, as many invoices have: text, and no fields to find."""
    page = _Page(dpi, family)
    for i, line in enumerate(_TERMS):
        page.text(0.8, 0.8 + 0.3 * i, line, 12 if i == 0 else 9, bold=i == 0)
    return page.image


# --- what happens to paper on its way to us -------------------------------------------------


def _noise(image: Image.Image, rnd: random.Random, amount: int) -> Image.Image:
    """Scanner grain (uniform noise up to `amount` grey levels) plus some dust specks."""
    grain = Image.frombytes("L", image.size, rnd.randbytes(image.width * image.height))
    grain = grain.point(lambda v: v * amount // 255)
    out = ImageChops.subtract(image, grain)
    draw = ImageDraw.Draw(out)
    for _ in range(image.width * image.height // 20_000):
        x, y = rnd.randrange(image.width), rnd.randrange(image.height)
        r = rnd.choice((1, 1, 2))
        draw.ellipse((x, y, x + r, y + r), fill=rnd.randint(0, 120))
    return out


def _scan(image: Image.Image, rnd: random.Random) -> Image.Image:
    """Grey paper, a soft focus and grain: what a flatbed or a copier hands back."""
    paper = image.point(lambda v: 235 + v * 20 // 255 if v > 128 else v + 25)
    blurred = paper.filter(ImageFilter.GaussianBlur(rnd.uniform(0.5, 1.1)))
    return _noise(blurred, rnd, rnd.randint(30, 60))


def _skew(image: Image.Image, degrees: float) -> Image.Image:
    return image.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=250)


def _encode(image: Image.Image, fmt: str, dpi: int, **options: object) -> bytes:
    if fmt == "PNG":
        options.setdefault("compress_level", 1)  # grainy scans compress slowly and little
    buffer = io.BytesIO()
    image.save(buffer, fmt, dpi=(dpi, dpi), **options)
    return buffer.getvalue()


def _exif_rotated_jpeg(image: Image.Image, dpi: int, rnd: random.Random) -> bytes:
    """A phone picture: pixels stored sideways, the EXIF Orientation tag says how to turn them."""
    orientation = rnd.choice((6, 8, 3))  # 6: turn 90° clockwise to view; 8: 270°; 3: 180°
    stored = image.rotate({6: 90, 8: 270, 3: 180}[orientation], expand=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(stored, "JPEG", dpi, quality=80, exif=exif)


def _text_pdf_lines(inv: _Invoice, w: _Wording) -> list[str]:
    lines = [inv.issuer, *inv.style.address, "", w.title]
    lines += [f"{w.number} {inv.number}", f"{w.date} {w.issued}", f"{w.due} {w.due_on}", ""]
    lines += [w.bill_to, inv.partner, ""]
    lines.append("    ".join(w.head))
    for i, (desc, qty, _) in enumerate(inv.items):
        lines.append(f"{desc}    {qty}    {w.amounts[f'unit{i}']}    {w.amounts[f'item{i}']}")
    if w.currency_note:
        lines.append(w.currency_note)
    lines += ["", f"{w.subtotal}    {w.amounts['subtotal']}", f"{w.tax}    {w.amounts['tax']}"]
    lines.append(f"{w.total}    {w.amounts['total']}")
    lines += [f"{label}    {amount}" for label, amount in w.paid]
    return [*lines, "", w.footer]


def _sample(index: int, seed: int) -> Sample:
    rnd = random.Random(f"{seed}:{index}")
    kind = KINDS[index % len(KINDS)]
    # a stride that gives each kind every style in turn as the set grows (11 + 2 is odd)
    style = _STYLES[(index + 2 * (index // len(KINDS))) % len(_STYLES)]
    inv = _invoice(rnd, style)
    layout = rnd.choice(LAYOUTS)
    family = rnd.choice(available_fonts())
    expected = Expected(inv.issuer, inv.number, inv.issued_on, inv.total, inv.currency)
    name = f"{index:02d}-{kind}-{layout}-{style.key}-{inv.currency}-{family}"

    if kind == "demo-pdf":  # the demo's own invoice: items without tax, ISO date
        demo = replace(inv, tax_bp=0)
        data = invoice_pdf(
            issuer=demo.issuer,
            number=demo.number,
            issued=demo.issued_on,
            bill_to=demo.partner,
            items=[(desc, qty * unit) for desc, qty, unit in demo.items],
            currency=demo.currency,
        )
        expected = Expected(demo.issuer, demo.number, demo.issued_on, demo.total, demo.currency)
        return Sample(f"{index:02d}-demo-pdf-{inv.currency}", data, "application/pdf", expected)
    if kind == "text-pdf":
        data = pdf_document(_text_pdf_lines(inv, _wording(inv, rnd, text_pdf=True)))
        name = f"{index:02d}-text-pdf-{style.key}-{inv.currency}"
        return Sample(name, data, "application/pdf", expected)

    wording = _wording(inv, rnd)
    dpi = 300 if kind in ("png-clean", "png-rot90", "png-rot180") else 200
    image = _render(inv, wording, layout, family, dpi, logo=rnd.random() < 0.35)
    if kind == "png-clean":
        return Sample(name, _encode(image, "PNG", dpi), "image/png", expected)
    if kind == "png-scan":
        return Sample(name, _encode(_scan(image, rnd), "PNG", dpi), "image/png", expected)
    if kind == "png-skew":
        angle = rnd.choice((-1, 1)) * rnd.uniform(1.0, 3.0)
        data = _encode(_skew(_scan(image, rnd), angle), "PNG", dpi)
        return Sample(f"{name}-{angle:+.1f}deg", data, "image/png", expected)
    if kind in ("png-rot90", "png-rot180"):
        turn = 180 if kind == "png-rot180" else rnd.choice((90, 270))
        image = _noise(image.rotate(turn, expand=True), rnd, 25)
        return Sample(f"{name}-{turn}", _encode(image, "PNG", dpi), "image/png", expected)
    if kind == "png-lowres":  # a 100 dpi fax-quality scan
        small = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
        return Sample(name, _encode(_noise(small, rnd, 20), "PNG", 100), "image/png", expected)
    if kind == "jpeg-artefacts":
        quality = rnd.randint(15, 40)
        data = _encode(_scan(image, rnd), "JPEG", dpi, quality=quality)
        return Sample(f"{name}-q{quality}", data, "image/jpeg", expected)
    if kind == "jpeg-exif":
        data = _exif_rotated_jpeg(_scan(image, rnd), dpi, rnd)
        return Sample(name, data, "image/jpeg", expected)
    # image-pdf: a scanned invoice inside a PDF, as office scanners send them; half of them
    # with a second page of terms
    angle = rnd.uniform(-1.5, 1.5)
    pages = [_skew(_scan(image, rnd), angle)]
    if index % 2:
        pages.append(_scan(_terms_page(dpi, family), rnd))
    buffer = io.BytesIO()
    pages[0].save(buffer, "PDF", resolution=float(dpi), save_all=True, append_images=pages[1:])
    name = f"{name}-{angle:+.1f}deg-{len(pages)}p"
    return Sample(name, buffer.getvalue(), "application/pdf", expected)


def generate(count: int = 60, seed: int = 7, kinds: Sequence[str] = KINDS) -> list[Sample]:
    """`count` invoices of the given kinds (all by default, taken in turn), with styles, layouts
    and fonts varying; the same bytes for the same arguments."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown sample kinds: {', '.join(sorted(unknown))}")
    samples: list[Sample] = []
    index = 0
    while len(samples) < count:
        if KINDS[index % len(KINDS)] in kinds:
            samples.append(_sample(index, seed))
        index += 1
    return samples


# --- bad inputs -----------------------------------------------------------------------------


def _pdf(objects: Sequence[bytes], trailer_extra: bytes = b"") -> bytes:
    """A PDF file from numbered objects (1 = catalog), with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        trailer_extra,
        xref,
    )
    return bytes(out)


def encrypted_pdf() -> bytes:
    """A PDF protected by the standard security handler with an unknown user password."""
    content = b"BT /F1 12 Tf 72 700 Td (Invoice INV-0001 Total 100.00 USD) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        # /O and /U are hashes of passwords nobody here knows: no password opens the file.
        b"<< /Filter /Standard /V 1 /R 2 /P -44 /O <%s> /U <%s> >>" % (b"a1" * 32, b"5c" * 32),
    ]
    return _pdf(objects, b"/Encrypt 5 0 R /ID [<%s> <%s>] " % (b"0f" * 16, b"0f" * 16))


def long_pdf(pages: int = 500) -> bytes:
    """A PDF of `pages` pages without a text layer: a scanned invoice, then blank pages (a
    duplex scan of a thick stack). Returns the same bytes every time."""
    rnd = random.Random("long")
    inv = _invoice(rnd, _STYLES[0])
    scan = _render(inv, _wording(inv, rnd), "classic", available_fonts()[0], 100)
    jpeg = _encode(scan, "JPEG", 100, quality=60)
    content = b"q 612 0 0 792 0 0 cm /Im1 Do Q"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % (6 + i) for i in range(pages)), pages),
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray"
        b" /BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n%s\nendstream"
        % (scan.width, scan.height, len(jpeg), jpeg),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Length 0 >>\nstream\n\nendstream",
    ]
    first = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
    first += b" /Resources << /XObject << /Im1 3 0 R >> >> >>"
    blank = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R >>"
    objects += [first] + [blank] * (pages - 1)
    return _pdf(objects)


def huge_page_pdf(points: int = 14_400) -> bytes:
    """One page of `points` x `points` (200 inches square at the PDF maximum): a render bomb."""
    content = b"BT /F1 400 Tf 1000 1000 Td (Total 1.00 USD) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /UserUnit 10 /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>" % (points, points),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return _pdf(objects)


def huge_image_header(width: int = 20_000, height: int = 20_000) -> bytes:
    """A PNG declaring `width` x `height` pixels in its header, without the pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    row = zlib.compress(b"\x00" + b"\xff" * min(width, 1000))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", row) + chunk(b"IEND", b"")
