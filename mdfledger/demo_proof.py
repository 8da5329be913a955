"""Proof files for the demo, made in code: an invoice PDF, a booth photo PNG, a lead list CSV.

Small but real: each passes the proof store's checks, opens in a browser, and is the same bytes
for the same arguments (so a reused invoice is spotted as a duplicate file, as it would be).
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Sequence
from datetime import date

from PIL import Image, ImageDraw, ImageFont

from mdfledger.money import format_amount


def _pdf_text(text: str) -> bytes:
    """A PDF literal string: backslashes and parentheses escaped, Latin-1 (Helvetica's set)."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("latin-1", "replace") + b")"


def pdf_document(lines: Sequence[str]) -> bytes:
    """A one-page US Letter PDF showing `lines` in Helvetica, with a correct xref table."""
    body = b"BT /F1 11 Tf 16 TL 56 736 Td " + b" ".join(
        _pdf_text(line) + b" Tj T*" for line in lines
    )
    content = body + b" ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def invoice_pdf(
    *,
    issuer: str,
    number: str,
    issued: date,
    bill_to: str,
    items: Sequence[tuple[str, int]],
    currency: str = "USD",
) -> bytes:
    """An invoice whose total is the sum of its items (minor units)."""
    total = sum(amount for _, amount in items)
    lines = [
        issuer,
        "",
        f"INVOICE {number}",
        f"Date: {issued.isoformat()}",
        f"Bill to: {bill_to}",
        "",
    ]
    lines += [
        f"{text:<48} {format_amount(amount, currency):>12} {currency}" for text, amount in items
    ]
    lines += ["", f"{'Total':<48} {format_amount(total, currency):>12} {currency}", ""]
    lines.append("Payment due within 30 days. Thank you for your business.")
    return pdf_document(lines)


def booth_photo(caption: str, seed: int) -> bytes:
    """A 480x320 PNG 'photo' of a booth: a banner with `caption`, a counter, some people."""
    rnd = random.Random(seed)
    image = Image.new("RGB", (480, 320), (205 + rnd.randint(0, 40), 210, 220))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 230, 480, 320), fill=(120, 110, 100))  # floor
    colour = (rnd.randint(0, 90), rnd.randint(60, 160), rnd.randint(120, 220))
    draw.rectangle((40, 30, 440, 90), fill=colour)  # banner
    try:  # Pillow's built-in scalable font needs FreeType; the bitmap one is tiny but works
        font: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.load_default(size=22)
    except (ImportError, OSError):
        font = ImageFont.load_default()
    draw.text((60, 47), caption[:34], fill=(255, 255, 255), font=font)
    draw.rectangle((90, 150, 390, 240), fill=(240, 240, 235), outline=(60, 60, 60))  # counter
    for _ in range(4):  # visitors
        x = rnd.randint(20, 440)
        shirt = (rnd.randint(0, 255), rnd.randint(0, 255), rnd.randint(0, 255))
        draw.ellipse((x, 140, x + 22, 162), fill=(225, 190, 160))
        draw.rectangle((x - 4, 162, x + 26, 230), fill=shirt)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


_FIRST = ("Ana", "Ben", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "June", "Kofi")
_LAST = ("Alvarez", "Brown", "Chowdhury", "Dubois", "Evans", "Fischer", "Garcia", "Ito", "Khan")
_COMPANIES = ("Northbank", "Helio Foods", "Vantage Health", "Orion Freight", "Civic Energy")


def lead_list_csv(event: str, seed: int, rows: int = 24) -> bytes:
    """A registrant export: name, company, e-mail (on example.com), consent, the event."""
    rnd = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("first_name", "last_name", "company", "email", "consent", "event"))
    for _ in range(rows):
        first, last = rnd.choice(_FIRST), rnd.choice(_LAST)
        company = rnd.choice(_COMPANIES)
        email = f"{first}.{last}@{company.split()[0]}.example.com".lower()
        writer.writerow((first, last, company, email, rnd.choice(("yes", "yes", "no")), event))
    return out.getvalue().encode()
