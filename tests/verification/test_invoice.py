"""Invoice reading: fields picked from text, real files through Tesseract, bad files refused with a
reason, and the comparison with the claim worded for finance."""

from __future__ import annotations

import io
import json
from datetime import date

import pytesseract
import pytest
from PIL import Image

from mdfledger.demo_proof import invoice_pdf
from mdfledger.verification import invoice_samples as samples
from mdfledger.verification.invoice import (
    Field,
    InvoiceReading,
    compare_invoice,
    extract_fields,
    read_invoice,
    same_company,
)
from mdfledger.verification.outcome import Outcome, Unreadable

# --- fields from text -----------------------------------------------------------------------


def fields(text: str) -> dict[str, object]:
    found = extract_fields(text)
    return {
        name: getattr(found, name).value
        for name in ("issuer", "number", "issued_on", "total", "currency")
    }


@pytest.mark.parametrize(
    ("line", "total", "currency"),
    [
        ("Total 1,234.56 USD", 123456, "USD"),
        ("Gesamtbetrag 1.234,56 EUR", 123456, "EUR"),
        ("Total TTC 1 234,56 EUR", 123456, "EUR"),
        ("Total TTC 1\u202f234,56 \u20ac", 123456, "EUR"),  # narrow no-break space
        ("Total TTC 1\u00a0234,56 \u20ac", 123456, "EUR"),  # no-break space
        ("Total 1234.56 GBP", 123456, "GBP"),
        ("Total CHF 1'234.50", 123450, "CHF"),
        ("Total CHF 1\u2019234.50", 123450, "CHF"),
        ("Total 123,400 JPY", 123400, "JPY"),
        ("Total \u00a5123,400", 123400, "JPY"),
        ("Total 1,234,567.89 USD", 123456789, "USD"),
        ("Totalt 12 345,50 SEK", 1234550, "SEK"),
        ("Total: 1234,5 EUR", 123450, "EUR"),
        ("Amount due: $1,234.56", 123456, "USD"),
        ("Total due \u00a31,234.56", 123456, "GBP"),
        ("Total: C$ 99.00", 9900, "CAD"),
        ("Total 1 ,234.56 USD", 123456, "USD"),  # OCR's stray space inside the number
        ("Net \u00e0 payer 1500 126,00 \u20ac", 150012600, "EUR"),  # and a space OCR lost
    ],
)
def test_every_number_format_gives_exact_minor_units(line: str, total: int, currency: str):
    found = fields(f"Acme Ltd\nInvoice No: 42\n{line}")
    assert (found["total"], found["currency"]) == (total, currency)


@pytest.mark.parametrize(
    ("text", "issued"),
    [
        ("Date: 2026-03-02", date(2026, 3, 2)),
        ("Date: 02.03.2026", date(2026, 3, 2)),
        ("Date: 2 March 2026", date(2026, 3, 2)),
        ("Date: Mar 2, 2026", date(2026, 3, 2)),
        ("Date: March 2nd, 2026", date(2026, 3, 2)),
        ("Datum: 2. März 2026", date(2026, 3, 2)),
        ("Date : 2 mars 2026", date(2026, 3, 2)),
        ("Date: 2026/03/02", date(2026, 3, 2)),
        ("Date: 25/03/2026", date(2026, 3, 25)),  # only one order is possible
        ("Invoice date: 02-Mar-2026", date(2026, 3, 2)),
    ],
)
def test_date_formats(text: str, issued: date):
    found = extract_fields(f"Acme Ltd\n{text}\nTotal 10.00 EUR")
    assert found.issued_on.value == issued
    assert found.issued_on.confidence >= 80


def test_slash_dates_follow_the_currency_or_other_dates_and_are_unsure_without_a_cue():
    us = extract_fields("Acme Inc.\nDate: 03/02/2026\nTotal $10.00")
    uk = extract_fields("Acme Ltd\nDate: 03/02/2026\nTotal \u00a310.00")
    assert us.issued_on.value == date(2026, 3, 2) and uk.issued_on.value == date(2026, 2, 3)
    # another date on the page that can only be day first settles it, whatever the currency
    settled = extract_fields("Acme Inc.\nDate: 03/02/2026\nDue date: 25/02/2026\nTotal $10.00")
    assert settled.issued_on.value == date(2026, 2, 3)
    assert settled.issued_on.confidence > us.issued_on.confidence
    bare = extract_fields("Acme\nDate: 03/02/2026")
    assert bare.issued_on.value == date(2026, 2, 3) and bare.issued_on.confidence < 60


def test_the_invoice_date_is_not_the_due_date_or_the_delivery_date():
    text = (
        "Acme Ltd\nDue date: 2026-04-01\nDelivery date: 2026-02-20\nInvoice date: 2026-03-02\n"
        "Total 10.00 EUR"
    )
    found = extract_fields(text)
    assert found.issued_on.value == date(2026, 3, 2)
    assert found.issued_on.line == "Invoice date: 2026-03-02"


def test_the_grand_total_wins_over_subtotal_tax_and_a_paid_balance():
    text = """Brightline Events Ltd
Invoice No. INV-0042
Description   Qty   Unit price   Total
Booth rental   1   1,000.00   1,000.00
Subtotal   1,000.00
VAT 20%   200.00
Total   1,200.00 GBP
Amount paid   1,200.00 GBP
Balance due   0.00 GBP"""
    found = extract_fields(text)
    assert found.total.value == 120000 and found.total.line == "Total   1,200.00 GBP"
    assert found.total.confidence >= 90


@pytest.mark.parametrize(
    ("label", "total"),
    [
        ("Grand total", 119000),
        ("Total due", 119000),
        ("Total TTC", 119000),
        ("Gesamtbetrag", 119000),
        ("Rechnungsbetrag", 119000),
        ("Net \u00e0 payer", 119000),
    ],
)
def test_total_labels_in_several_languages(label: str, total: int):
    text = f"Acme\nTotal HT 1.000,00 EUR\nTVA 19 % 190,00 EUR\n{label} 1.190,00 EUR"
    assert fields(text)["total"] == total


def test_an_amount_due_box_with_the_amount_under_its_label():
    found = extract_fields("Acme Inc.\nINVOICE\nAMOUNT DUE\n$2,500.00\nThank you")
    assert found.total.value == 250000 and found.total.line == "$2,500.00"


def test_a_total_whose_label_was_misread_is_found_by_adding_up():
    text = (
        "Atelier SAS\nMontant HT 2 324,99 \u20ac\nTVA 7 % 162,75 \u20ac\n"
        "Montant TIC 2 487,74 \u20ac"  # OCR's misreading of "TTC"
    )
    assert fields(text)["total"] == 248774


def test_without_a_total_the_field_is_empty_and_a_note_says_why():
    found = extract_fields("Acme Ltd\nInvoice No: 12\nThank you for your business")
    assert found.total == Field() and "no total found on the invoice" in found.notes


def test_a_lone_dollar_sign_is_usd_with_less_confidence_and_a_named_currency_wins():
    alone = extract_fields("Acme\nTotal $10.00")
    named = extract_fields("Acme\nTotal $10.00\nAll amounts in CAD")
    assert (alone.currency.value, named.currency.value) == ("USD", "CAD")
    assert 60 <= alone.currency.confidence < 90
    coded = extract_fields("Acme\nTotal 10.00 USD")
    assert coded.currency.confidence == 100


@pytest.mark.parametrize(
    ("line", "number"),
    [
        ("Invoice No: INV-0042", "INV-0042"),
        ("Invoice No. INV-0042", "INV-0042"),
        ("Invoice #: 2026-0113", "2026-0113"),
        ("Invoice number 77", "77"),
        ("Rechnung Nr. RE-2026-118", "RE-2026-118"),
        ("Rechnungsnummer: RE-2026-118", "RE-2026-118"),
        ("Facture n\u00b0 F2026/044", "F2026/044"),
        ("Number: A-10293", "A-10293"),
        ("INVOICE INV-0042", "INV-0042"),
    ],
)
def test_invoice_number_labels(line: str, number: str):
    assert fields(f"Acme Ltd\n{line}\nTotal 1.00 USD")["number"] == number


def test_customer_and_vat_numbers_are_not_the_invoice_number():
    text = "Acme Ltd\nCustomer No: C-991\nVAT number: GB123456789\nInvoice No: INV-7\nTotal 1 USD"
    assert fields(text)["number"] == "INV-7"
    assert fields("Acme Ltd\nCustomer No: C-991\nTotal 1.00 USD")["number"] is None


def test_the_issuer_is_the_seller_not_the_title_or_the_customer():
    assert fields("INVOICE\nKestrel & Finch Ltd\n8 Clerkenwell Road\nBill to: Contoso LLC")[
        "issuer"
    ] == ("Kestrel & Finch Ltd")
    assert fields("Northwind Druck GmbH   RECHNUNG\nHauptstra\u00dfe 41")["issuer"] == (
        "Northwind Druck GmbH"
    )
    assert fields("Bill to:\nContoso LLC\nFrom: Helvetic Expo AG")["issuer"] == "Helvetic Expo AG"


def test_as_dict_is_json_with_iso_dates_and_the_total_in_minor_units():
    found = extract_fields("Acme Ltd\nInvoice No: 42\nDate: 2026-03-02\nTotal 1,234.50 USD")
    data = json.loads(json.dumps(found.as_dict()))
    assert data["issued_on"]["value"] == "2026-03-02"
    assert data["total"]["value"] == 123450 and data["total"]["formatted"] == "1,234.50"
    assert data["currency"] == {"value": "USD", "confidence": 100, "line": "Total 1,234.50 USD"}


# --- real files -----------------------------------------------------------------------------


def sample(kind: str) -> samples.Sample:
    return samples.generate(1, kinds=(kind,))[0]


def assert_reads(found: InvoiceReading, expected: samples.Expected) -> None:
    assert found.total.value == expected.total, found.text
    assert found.currency.value == expected.currency
    assert found.issued_on.value == expected.issued_on
    # The number is missed on ~2% of scans (an image PDF here); its accuracy floor is
    # held by test_invoice_accuracy on the whole set.
    assert found.total.confidence >= 60


def test_a_pdf_with_a_text_layer_is_read_without_ocr():
    data = invoice_pdf(
        issuer="Webinars Inc",
        number="INV-1001",
        issued=date(2026, 8, 25),
        bill_to="Acme Networks",
        items=[("Webinar hosting", 250_000), ("Recording", 50_000)],
    )
    found = read_invoice(data)
    assert found.method == "text" and (found.pages_read, found.pages_total) == (1, 1)
    assert found.issuer.value == "Webinars Inc" and found.number.value == "INV-1001"
    assert (found.total.value, found.currency.value) == (300_000, "USD")
    assert found.issued_on.value == date(2026, 8, 25)


@pytest.mark.parametrize(
    "kind", ["image-pdf", "png-clean", "png-rot90", "png-rot180", "png-lowres", "jpeg-exif"]
)
def test_scans_are_read_by_ocr_whatever_their_orientation_and_resolution(kind: str):
    scan = sample(kind)
    found = read_invoice(scan.data)
    assert found.method == "ocr"
    assert_reads(found, scan.expected)


def test_a_500_page_pdf_reads_only_the_first_pages_and_says_so():
    found = read_invoice(samples.long_pdf(500), max_pages=3)
    assert (found.pages_read, found.pages_total) == (3, 500)
    assert "read the first 3 of 500 pages" in found.notes
    assert found.total.value is not None  # the invoice on page 1


def test_a_page_with_a_huge_mediabox_is_rendered_small():
    found = read_invoice(samples.huge_page_pdf())
    assert any("unusually large (508 x 508 cm)" in note for note in found.notes)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the file is empty"),
        (bytes(range(256)) * 8, "the file is not a PDF or an image (PNG, JPEG, TIFF)"),
        (b"%PDF-1.4\n1 0 obj garbage\n%%EOF\n", "the file is not a readable PDF: "),
        (samples.encrypted_pdf(), "the PDF is encrypted with a password"),
        (
            samples.huge_image_header(20_000, 20_000),
            "the image is too large to read: 20,000 x 20,000 pixels (400 megapixels; "
            "the limit is 50 megapixels)",
        ),
    ],
)
def test_bad_files_are_refused_with_a_reason(data: bytes, reason: str):
    with pytest.raises(Unreadable) as refused:
        read_invoice(data)
    assert str(refused.value).startswith(reason)


def test_a_truncated_image_is_refused_as_damaged():
    png = io.BytesIO()
    Image.new("L", (400, 400), 255).save(png, "PNG")
    with pytest.raises(Unreadable, match="the image file is damaged or incomplete"):
        read_invoice(png.getvalue()[:200])


def test_ocr_stops_at_the_time_limit():
    with pytest.raises(Unreadable, match=r"reading the invoice took longer than 0\.1 s"):
        read_invoice(sample("png-clean").data, timeout=0.1)


def test_a_server_without_tesseract_says_so(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    with pytest.raises(Unreadable, match="Tesseract is not installed on this server"):
        read_invoice(sample("png-clean").data)


def test_samples_are_the_same_bytes_for_the_same_seed():
    first = samples.generate(3, seed=5)
    assert first == samples.generate(3, seed=5)
    assert [s.data for s in first] != [s.data for s in samples.generate(3, seed=6)]


# --- comparing with the claim ---------------------------------------------------------------

STARTS, ENDS = date(2026, 2, 15), date(2026, 2, 17)


def reading(
    total: int | None = 123456,
    *,
    currency: str = "USD",
    issued: date = date(2026, 2, 20),
    issuer: str = "Webinars Inc",
    number: str | None = "INV-0042",
    confidence: int = 95,
) -> InvoiceReading:
    return InvoiceReading(
        issuer=Field(issuer, confidence, issuer),
        number=Field(number, confidence, f"Invoice No: {number}"),
        issued_on=Field(issued, confidence, f"Date: {issued}"),
        total=Field(total, confidence, f"Total {total}"),
        currency=Field(currency, confidence, f"Total {total} {currency}"),
    )


def judge(*readings: InvoiceReading, cost: int = 123456, **kw: object):
    options: dict = {
        "currency": "USD",
        "actual_cost": cost,
        "starts_on": STARTS,
        "ends_on": ENDS,
        "partner_name": "Acme Networks",
        "tolerance_bp": 100,
    }
    options.update(kw)
    return compare_invoice(list(readings), **options)


def test_a_matching_invoice_passes_with_full_score():
    found = judge(reading())
    assert (found.outcome, found.score) == (Outcome.PASS, 100)
    assert found.summary == "Invoice total 1,234.56 USD matches the claimed cost"
    assert found.evidence["difference"] == 0
    json.dumps(found.evidence)


def test_a_total_within_the_tolerance_passes_with_a_lower_score():
    found = judge(reading(123000))
    assert found.outcome == Outcome.PASS and 90 <= found.score < 100
    assert found.summary == (
        "Invoice total 1,230.00 USD is within 1% of the claimed cost of 1,234.56 USD"
    )


def test_a_smaller_invoice_fails_with_the_difference():
    found = judge(reading(113456))
    assert found.outcome == Outcome.FAIL
    assert found.summary == (
        "Invoice total 1,134.56 USD is 100.00 USD below the claimed cost of 1,234.56 USD"
    )
    assert found.evidence["difference"] == -10000 and found.score < 90


def test_two_invoices_add_up_to_the_cost():
    found = judge(reading(100000, number="A-1"), reading(23456, number="A-2"))
    assert found.outcome == Outcome.PASS
    assert found.summary == "The 2 invoices' total 1,234.56 USD matches the claimed cost"
    assert found.evidence["sum"] == 123456


def test_an_invoice_dated_long_before_the_activity_fails():
    found = judge(reading(issued=date(2026, 1, 5)))
    assert found.outcome == Outcome.FAIL
    assert (
        found.summary == "Invoice INV-0042 is dated 2026-01-05, 41 days before the activity started"
    )
    assert judge(reading(issued=date(2026, 1, 5)), issued_grace_days=45).outcome == Outcome.PASS
    after = judge(reading(issued=date(2026, 4, 1)))
    assert after.summary == "Invoice INV-0042 is dated 2026-04-01, 43 days after the activity ended"


def test_an_invoice_issued_by_the_partner_itself_fails():
    found = judge(reading(issuer="ACME NETWORKS, Inc."))
    assert found.outcome == Outcome.FAIL
    assert (
        found.summary == "Invoice INV-0042 was issued by the partner itself (ACME NETWORKS, Inc.)"
    )
    assert same_company("Acme Networks GmbH", "acme networks") and not same_company(
        "Acme Networks", "Webinars Inc"
    )


def test_an_invoice_in_another_currency_fails():
    found = judge(reading(currency="EUR"))
    assert found.outcome == Outcome.FAIL
    assert found.summary == "Invoice INV-0042 is in EUR, the claim is in USD"


def test_a_total_read_unsurely_is_inconclusive_not_a_mismatch():
    found = judge(reading(999, confidence=45))
    assert found.outcome == Outcome.INCONCLUSIVE
    assert "Invoice INV-0042: the total could not be read with confidence (confidence 45)" in (
        found.summary
    )


def test_a_missing_field_is_inconclusive():
    found = judge(reading(None, number=None))
    assert found.outcome == Outcome.INCONCLUSIVE and found.score == 0
    assert found.summary == "The invoice: the total could not be read with confidence"


def test_an_unreadable_invoice_is_inconclusive_with_the_reason():
    found = judge(unreadable=[("invoice.pdf", "the PDF is encrypted with a password")])
    assert found.outcome == Outcome.INCONCLUSIVE and found.score == 0
    assert found.summary == "Could not read the invoice: the PDF is encrypted with a password"
    beside = judge(reading(), unreadable=[("b.pdf", "the file is empty")])
    assert beside.outcome == Outcome.INCONCLUSIVE
    assert beside.summary == (
        "Invoice total 1,234.56 USD matches the claimed cost; "
        "Could not read b.pdf: the file is empty"
    )
