"""Proof storage: the same behaviour from the local directory and from S3 (moto's server).

Every sample file is built here in code; no binary fixtures live in the repository. The S3
tests start moto's server on loopback once per session and give each test its own bucket;
without moto they skip and say why (or fail under MDFLEDGER_TEST_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import struct
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from mdfledger import storage
from mdfledger.config import ConfigError, Settings
from mdfledger.storage import (
    LocalStore,
    ProofCorrupt,
    ProofNotFound,
    ProofStore,
    S3Store,
    UploadRejected,
    content_disposition,
    display_name,
    download_filename,
    inspect,
    store_from_settings,
)
from tests import storage_server
from tests.conftest import skip_or_fail
from tests.samples import image_bytes, pdf_bytes

LIMIT = 1024 * 1024  # the stores under test accept up to 1 MB, so the size tests stay small
ACCEPTED = "upload PDF, PNG, JPEG, CSV or XLSX"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# --- sample files --------------------------------------------------------------------------------


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height 1-bit pixels: a decompression bomb's
    header, with the first rows of image data. Built by hand: Pillow would need the pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + (width + 7) // 8) * 16)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="{main}"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'
)
XLSX_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
XLSM_MAIN = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
XLSX_PARTS = {
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
        'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" '
        f'Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/workbook.xml": (
        f'<?xml version="1.0" encoding="UTF-8"?><workbook {NS} xmlns:r="{REL}"><sheets>'
        '<sheet name="Leads" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
        'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" '
        f'Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
    ),
    "xl/worksheets/sheet1.xml": (
        f'<?xml version="1.0" encoding="UTF-8"?><worksheet {NS}><sheetData>'
        '<row r="1"><c r="A1" t="inlineStr"><is><t>lead</t></is></c></row>'
        '<row r="2"><c r="A2"><v>42</v></c></row></sheetData></worksheet>'
    ),
}


def zip_bytes(parts: dict[str, bytes | str], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, body in parts.items():
            archive.writestr(name, body)
    return buffer.getvalue()


def xlsx_bytes(
    main: str = XLSX_MAIN,
    extra: dict[str, bytes | str] | None = None,
    method: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    parts: dict[str, bytes | str] = {"[Content_Types].xml": CONTENT_TYPES.format(main=main)}
    parts.update(XLSX_PARTS)
    parts.update(extra or {})
    return zip_bytes(parts, method)


CSV_TEXT = "email,company,date\nada@example.com,Analytical Engines,2026-03-01\n"


@dataclass(frozen=True)
class Sample:
    id: str
    filename: str
    build: Callable[[], bytes]
    media_type: str = ""
    extension: str = ""
    code: str = ""
    reason: str = ""


ACCEPTED_SAMPLES = [
    Sample("pdf", "invoice.pdf", pdf_bytes, "application/pdf", "pdf"),
    Sample("png", "screenshot.png", lambda: image_bytes("PNG"), "image/png", "png"),
    Sample("png-rgba", "logo.png", lambda: image_bytes("PNG", mode="RGBA"), "image/png", "png"),
    Sample("jpeg", "photo.jpeg", lambda: image_bytes("JPEG"), "image/jpeg", "jpg"),
    Sample("jpeg-cmyk", "print.jpg", lambda: image_bytes("JPEG", mode="CMYK"), "image/jpeg", "jpg"),
    Sample("xlsx", "leads.xlsx", xlsx_bytes, XLSX_TYPE, "xlsx"),
    Sample("csv", "leads.csv", lambda: CSV_TEXT.encode(), "text/csv", "csv"),
    Sample("csv-bom", "leads.csv", lambda: codecs.BOM_UTF8 + CSV_TEXT.encode(), "text/csv", "csv"),
    Sample("csv-utf16", "leads.csv", lambda: CSV_TEXT.encode("utf-16"), "text/csv", "csv"),
    Sample("csv-semicolon", "leads.csv", lambda: "a;b\n1;€\n".encode(), "text/csv", "csv"),
]

REFUSED_SAMPLES = [
    Sample("empty", "empty.pdf", lambda: b"", code="upload_empty", reason="empty"),
    Sample("blank", "blank.csv", lambda: b" \r\n\t\n", code="upload_empty", reason="empty"),
    Sample(
        "zip",
        "proof.zip",
        lambda: zip_bytes({"invoice.pdf": pdf_bytes()}),
        code="upload_type_not_accepted",
        reason="zip",
    ),
    Sample(
        "docx",
        "invoice.docx",
        lambda: zip_bytes({"[Content_Types].xml": "<Types/>", "word/document.xml": "<w/>"}),
        code="upload_type_not_accepted",
        reason="docx",
    ),
    Sample(
        "exe",
        "invoice.pdf",
        lambda: b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 50 + b"PE\x00",
        code="upload_type_not_accepted",
        reason="exe",
    ),
    Sample(
        "elf",
        "tool",
        lambda: b"\x7fELF\x02\x01\x01" + b"\x00" * 60,
        code="upload_type_not_accepted",
        reason="exe",
    ),
    Sample(
        "html",
        "landing.csv",
        lambda: b"<!DOCTYPE html>\n<html><body><script>alert(1)</script></body></html>",
        code="upload_type_not_accepted",
        reason="html",
    ),
    Sample(
        "svg",
        "logo.png",
        lambda: b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>',
        code="upload_type_not_accepted",
        reason="svg",
    ),
    Sample(
        "gif",
        "banner.gif",
        lambda: image_bytes("GIF", mode="P"),
        code="upload_type_not_accepted",
        reason="gif",
    ),
    Sample(
        "heic",
        "IMG_0001.jpg",
        lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 40,
        code="upload_type_not_accepted",
        reason="heic",
    ),
    Sample(
        "old-office",
        "budget.xls",
        lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504,
        code="upload_type_not_accepted",
        reason="ole",
    ),
    Sample(
        "nul-csv",
        "leads.csv",
        lambda: b"email,company\nada@example.com,\x00\x00\x00Engines\n",
        code="upload_type_not_accepted",
        reason="binary",
    ),
    Sample(
        "control-chars",
        "data.bin",
        lambda: bytes(range(1, 32)) * 4,
        code="upload_type_not_accepted",
        reason="binary",
    ),
    Sample(
        "latin1-csv",
        "leads.csv",
        lambda: "name\nJosé\n".encode("latin-1"),
        code="upload_not_utf8",
        reason="encoding",
    ),
    Sample(
        "pdf-cut-off",
        "invoice.pdf",
        lambda: pdf_bytes()[:-30],
        code="upload_damaged",
        reason="pdf_truncated",
    ),
    Sample(
        "jpeg-cut-off",
        "photo.jpg",
        lambda: (data := image_bytes("JPEG", (320, 240)))[: len(data) * 2 // 3],
        code="upload_damaged",
        reason="image_damaged",
    ),
    Sample(
        "png-cut-off",
        "shot.png",
        lambda: (data := image_bytes("PNG", (320, 240)))[: len(data) * 2 // 3],
        code="upload_damaged",
        reason="image_damaged",
    ),
    Sample(
        "png-bad-checksum",
        "shot.png",
        lambda: (data := image_bytes("PNG"))[:40] + bytes([data[40] ^ 0xFF]) + data[41:],
        code="upload_damaged",
        reason="image_damaged",
    ),
    Sample(
        "png-bomb-64mp",
        "bomb.png",
        lambda: png_claiming(8000, 8000),
        code="upload_image_too_large",
        reason="pixels",
    ),
    Sample(
        "png-bomb-100mp",  # over Pillow's warning threshold
        "bomb.png",
        lambda: png_claiming(10_000, 10_000),
        code="upload_image_too_large",
        reason="pixels",
    ),
    Sample(
        "png-bomb-900mp",  # Pillow itself refuses this one while reading the header
        "bomb.png",
        lambda: png_claiming(30_000, 30_000),
        code="upload_image_too_large",
        reason="pixels",
    ),
    Sample(
        "xlsx-zip-bomb",
        "leads.xlsx",
        lambda: xlsx_bytes(extra={"xl/media/image1.bin": b"\x00" * (10 * 1024 * 1024)}),
        code="upload_workbook_too_large",
        reason="zip_bomb",
    ),
    Sample(
        "xlsm-vba",
        "leads.xlsx",
        lambda: xlsx_bytes(XLSM_MAIN, {"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0macro"}),
        code="upload_macros",
        reason="macros",
    ),
    Sample(
        "xlsm-content-type-only",
        "leads.xlsx",
        lambda: xlsx_bytes(XLSM_MAIN),
        code="upload_macros",
        reason="macros",
    ),
    Sample(
        "xlsx-damaged",
        "leads.xlsx",
        lambda: xlsx_bytes()[:200],
        code="upload_damaged",
        reason="zip_damaged",
    ),
]


# --- the stores ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """moto's S3 server for the session, or the reason there is none."""
    try:
        server = storage_server.start(tmp_path_factory.mktemp("moto"))
    except storage_server.MotoUnavailable as exc:
        yield str(exc)
        return
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_client(moto_server: Any) -> Any:
    """One client for the session with explicit dummy credentials (a client costs ~0.2 s to
    build). test_store_from_settings_uses_the_boto3_chain builds its own, as the app does."""
    if isinstance(moto_server, str):
        return None
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return session.client(
        "s3", endpoint_url=moto_server.endpoint_url, config=storage.S3_CLIENT_CONFIG
    )


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials only: nothing from the developer's own AWS setup, no proxies."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_REGION",
        "AWS_CA_BUNDLE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def s3_settings(server: Any, **overrides: Any) -> Settings:
    bucket = f"proof-{uuid.uuid4().hex[:12]}"
    values: dict[str, Any] = {
        "proof_store": "s3",
        "s3_bucket": bucket,
        "s3_endpoint_url": server.endpoint_url,
        "upload_max_bytes": LIMIT,
    }
    values.update(overrides)
    settings = Settings(**values)
    settings.validate()
    return settings


def make_s3_store(server: Any, client: Any = None, **overrides: Any) -> S3Store:
    store = store_from_settings(s3_settings(server, **overrides), client=client)
    assert isinstance(store, S3Store)
    store.client.create_bucket(Bucket=store.bucket)
    return store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ProofStore:
    if request.param == "local":
        settings = Settings(instance_path=tmp_path / "instance", upload_max_bytes=LIMIT)
        return store_from_settings(settings)
    server = request.getfixturevalue("moto_server")
    if isinstance(server, str):
        skip_or_fail(server)
    return make_s3_store(server, request.getfixturevalue("s3_client"))


@pytest.fixture
def s3_store(moto_server: Any, s3_client: Any) -> S3Store:
    if isinstance(moto_server, str):
        skip_or_fail(moto_server)
    return make_s3_store(moto_server, s3_client)


def stored_names(store: ProofStore) -> list[str]:
    """Everything the store holds, temporary files included."""
    if isinstance(store, LocalStore):
        if not store.root.exists():
            return []
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    assert isinstance(store, S3Store)
    listing = store.client.list_objects_v2(Bucket=store.bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def tamper(store: ProofStore, sha256: str, data: bytes) -> None:
    if isinstance(store, LocalStore):
        store.path(sha256).write_bytes(data)
    else:
        assert isinstance(store, S3Store)
        store.client.put_object(Bucket=store.bucket, Key=store.key(sha256), Body=data)


# --- the same behaviour from both stores ---------------------------------------------------------


def test_both_stores_implement_the_interface(store: ProofStore) -> None:
    assert isinstance(store, ProofStore)
    assert store.max_bytes == LIMIT


@pytest.mark.parametrize("sample", ACCEPTED_SAMPLES, ids=lambda s: s.id)
def test_each_accepted_type_is_stored_and_read_back(store: ProofStore, sample: Sample) -> None:
    data = sample.build()
    stored = store.put(data, filename=sample.filename)

    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert (stored.media_type, stored.extension) == (sample.media_type, sample.extension)
    assert store.exists(stored.sha256)
    assert store.open(stored.sha256) == data
    assert len(stored_names(store)) == 1


@pytest.mark.parametrize(
    ("sample", "disguise"),
    [
        (ACCEPTED_SAMPLES[0], "photo.png"),  # a PDF named as an image
        (ACCEPTED_SAMPLES[1], "invoice.pdf"),
        (ACCEPTED_SAMPLES[3], "scan.png"),
        (ACCEPTED_SAMPLES[5], "leads.csv"),
        (ACCEPTED_SAMPLES[6], "leads.xlsx"),
        (ACCEPTED_SAMPLES[0], "no-extension"),
    ],
    ids=["pdf-as-png", "png-as-pdf", "jpeg-as-png", "xlsx-as-csv", "csv-as-xlsx", "no-ext"],
)
def test_type_comes_from_content_not_name(store: ProofStore, sample: Sample, disguise: str) -> None:
    stored = store.put(sample.build(), filename=disguise)
    assert (stored.media_type, stored.extension) == (sample.media_type, sample.extension)
    assert download_filename(disguise, stored.extension).endswith("." + sample.extension)


@pytest.mark.parametrize("sample", REFUSED_SAMPLES, ids=lambda s: s.id)
def test_refused_files_are_not_stored(store: ProofStore, sample: Sample) -> None:
    data = sample.build()
    assert len(data) <= LIMIT

    with pytest.raises(UploadRejected) as caught:
        store.put(data, filename=sample.filename)

    error = caught.value
    assert error.code == sample.code
    assert error.details["reason"] == sample.reason
    assert error.http_status == 422
    assert error.to_dict()["code"] == sample.code
    if sample.code == "upload_type_not_accepted" and sample.reason != "binary":
        assert ACCEPTED in error.message
    assert stored_names(store) == []


def test_messages_say_what_the_file_is(store: ProofStore) -> None:
    cases = {
        "proof.zip": (zip_bytes({"a.pdf": pdf_bytes()}), "this file is a ZIP archive"),
        "x.docx": (
            zip_bytes({"[Content_Types].xml": "<Types/>", "word/document.xml": "<w/>"}),
            "this file is a Word document",
        ),
        "x.pdf": (b"MZ\x90\x00" + b"\x00" * 60, "this file is an executable program"),
        "x.dat": (b"\x00\x01\x02\x03garbage", "this file is not a type we accept"),
        "x.csv": (b"a,b\n\x00\x01", "this file contains binary data, not CSV text"),
        "x.xlsm": (xlsx_bytes(XLSM_MAIN), "this workbook contains macros"),
    }
    for filename, (data, start) in cases.items():
        with pytest.raises(UploadRejected) as caught:
            store.put(data, filename=filename)
        assert caught.value.message.startswith(start), caught.value.message
        assert caught.value.details["filename"] == filename
    assert stored_names(store) == []


def test_oversize_is_refused_before_the_body_is_read(
    store: ProofStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NoHashing:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError("an oversize upload must not be hashed")

    body = pdf_bytes() + b"%" * LIMIT
    monkeypatch.setattr(storage, "hashlib", NoHashing())
    with pytest.raises(storage.UploadTooLarge) as caught:
        store.put(body, filename="huge.pdf")
    assert caught.value.code == "upload_too_large"
    # Just over the limit, so the sizes are shown exactly rather than both as "1 MB".
    assert caught.value.message.startswith(
        f"the file is {len(body):,} bytes; the limit is 1,048,576 bytes"
    )
    assert caught.value.details["limit"] == LIMIT
    monkeypatch.undo()
    assert stored_names(store) == []


def test_exactly_at_the_limit_is_accepted(store: ProofStore) -> None:
    data = b"a,b\n" + b"1,2\n" * ((LIMIT - 4) // 4)
    data += b"\n" * (LIMIT - len(data))
    assert len(data) == LIMIT
    assert store.put(data, filename="big.csv").size == LIMIT


def test_the_same_content_twice_is_stored_once(store: ProofStore) -> None:
    data = pdf_bytes()
    uploads: list[str] = []

    def count(**kwargs: Any) -> None:
        uploads.append("put")

    if isinstance(store, S3Store):
        store.client.meta.events.register("before-call.s3.PutObject", count)
    try:
        first = store.put(data, filename="invoice.pdf")
        before = _fingerprint(store, first.sha256)
        second = store.put(data, filename="a different name.pdf")
    finally:
        if isinstance(store, S3Store):
            store.client.meta.events.unregister("before-call.s3.PutObject", count)

    assert first == second
    assert len(stored_names(store)) == 1
    assert _fingerprint(store, first.sha256) == before  # not written again
    if isinstance(store, S3Store):
        assert uploads == ["put"]


def _fingerprint(store: ProofStore, sha256: str) -> Any:
    if isinstance(store, LocalStore):
        info = store.path(sha256).stat()
        return (info.st_ino, info.st_mtime_ns)
    assert isinstance(store, S3Store)
    return store.client.head_object(Bucket=store.bucket, Key=store.key(sha256))["ETag"]


def test_different_files_are_stored_apart(store: ProofStore) -> None:
    a = store.put(pdf_bytes("one"), filename="a.pdf")
    b = store.put(pdf_bytes("two"), filename="a.pdf")
    assert a.sha256 != b.sha256
    assert len(stored_names(store)) == 2
    assert store.open(a.sha256) != store.open(b.sha256)


def test_reading_back_checks_the_hash(store: ProofStore) -> None:
    stored = store.put(pdf_bytes(), filename="invoice.pdf")
    tamper(store, stored.sha256, pdf_bytes("altered"))
    with pytest.raises(ProofCorrupt) as caught:
        store.open(stored.sha256)
    assert caught.value.code == "proof_corrupt"


def test_a_damaged_copy_is_replaced_by_the_next_upload(store: ProofStore) -> None:
    data = pdf_bytes()
    stored = store.put(data, filename="invoice.pdf")
    tamper(store, stored.sha256, b"%PDF-broken")
    if isinstance(store, S3Store):
        # S3 trusts what it holds (no read-back on upload); the read still refuses it.
        store.put(data, filename="invoice.pdf")
        with pytest.raises(ProofCorrupt):
            store.open(stored.sha256)
        return
    store.put(data, filename="invoice.pdf")
    assert store.open(stored.sha256) == data


@pytest.mark.parametrize(
    "sha256",
    [
        "0" * 64,
        "../../../../etc/passwd",
        "A" * 64,  # upper case is not how the store names files
        "0" * 63,
        "0" * 64 + "\n",
        "",
    ],
    ids=["unknown", "traversal", "upper", "short", "newline", "empty"],
)
def test_unknown_or_malformed_hashes_are_not_found(store: ProofStore, sha256: str) -> None:
    assert not store.exists(sha256)
    with pytest.raises(ProofNotFound) as caught:
        store.open(sha256)
    assert caught.value.code == "proof_not_found"
    assert caught.value.http_status == 404


@pytest.mark.parametrize(
    "filename",
    [
        "../../../../etc/passwd",
        "..\\..\\windows\\system32\\evil.pdf",
        "/absolute/path/invoice.pdf",
        "",
        "..",
        'in"voice\r\nX-Injected: yes.pdf',
        "\u202efdp.exe",
    ],
)
def test_filenames_cannot_steer_where_files_go(
    store: ProofStore, filename: str, tmp_path: Path
) -> None:
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    stored = store.put(pdf_bytes(), filename=filename)

    names = stored_names(store)
    assert names == [
        f"{stored.sha256[:2]}/{stored.sha256[2:4]}/{stored.sha256}"
        if isinstance(store, LocalStore)
        else f"proof/{stored.sha256[:2]}/{stored.sha256}"
    ]
    if isinstance(store, LocalStore):
        after = {p for p in tmp_path.rglob("*") if p.is_file()}
        assert after - before == {store.path(stored.sha256)}
    url = store.download_url(stored.sha256, filename=filename)
    if url is not None:
        disposition = parse_qs(urlsplit(url).query)["response-content-disposition"][0]
        assert "\r" not in disposition and "\n" not in disposition
        assert disposition.count('"') == 2
        assert "/" not in disposition and "\\" not in disposition


def test_local_store_gives_no_link(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    stored = store.put(pdf_bytes(), filename="invoice.pdf")
    assert store.download_url(stored.sha256, filename="invoice.pdf") is None
    assert store.path(stored.sha256).parent.parent.parent == tmp_path


def test_local_store_writes_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails half-way leaves neither a partial file nor a temporary one."""
    store = LocalStore(tmp_path)

    def fail(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(storage.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        store.put(pdf_bytes(), filename="invoice.pdf")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


# --- S3 only -------------------------------------------------------------------------------------


def test_s3_objects_are_encrypted_and_typed(s3_store: S3Store) -> None:
    stored = s3_store.put(image_bytes("PNG"), filename="shot.png")
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store.key(stored.sha256))
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "image/png"
    assert head["ContentLength"] == stored.size
    assert s3_store.key(stored.sha256) == f"proof/{stored.sha256[:2]}/{stored.sha256}"


def test_store_from_settings_uses_the_boto3_chain(moto_server: Any, aws_env: None) -> None:
    """No client given: store_from_settings builds one from the settings and the usual
    credential chain (here the dummy keys in the environment)."""
    if isinstance(moto_server, str):
        skip_or_fail(moto_server)
    store = make_s3_store(moto_server)
    stored = store.put(pdf_bytes(), filename="invoice.pdf")
    assert store.client.meta.endpoint_url == moto_server.endpoint_url
    assert store.client.meta.region_name == "us-east-1"
    assert store.open(stored.sha256) == pdf_bytes()


def test_s3_with_kms(moto_server: Any, s3_client: Any) -> None:
    if isinstance(moto_server, str):
        skip_or_fail(moto_server)
    store = make_s3_store(
        moto_server,
        s3_client,
        s3_sse="aws:kms",
        s3_kms_key_id="alias/mdfledger-proof",
        s3_prefix="/p/",
    )
    stored = store.put(pdf_bytes(), filename="invoice.pdf")
    head = store.client.head_object(Bucket=store.bucket, Key=store.key(stored.sha256))
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("alias/mdfledger-proof")
    assert stored_names(store) == [f"p/{stored.sha256[:2]}/{stored.sha256}"]


def _fetch(url: str) -> tuple[bytes, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return response.read(), response.headers


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("invoice.pdf", 'attachment; filename="invoice.pdf"'),
        (
            "Rechnung März.pdf",
            "attachment; filename=\"Rechnung Marz.pdf\"; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf",
        ),
        (
            '../a"b\r\nSet-Cookie: x=1.pdf',
            'attachment; filename="ab Set-Cookie_ x=1.pdf"; '
            "filename*=UTF-8''ab%20Set-Cookie%3A%20x%3D1.pdf",
        ),
    ],
    ids=["plain", "unicode", "injection"],
)
def test_presigned_link_downloads_the_bytes_with_the_name(
    s3_store: S3Store, filename: str, expected: str
) -> None:
    data = pdf_bytes()
    stored = s3_store.put(data, filename=filename)
    url = s3_store.download_url(stored.sha256, filename=filename)
    assert url is not None and url.startswith(s3_store.client.meta.endpoint_url)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["300"]

    body, headers = _fetch(url)
    assert body == data
    assert headers["Content-Disposition"] == expected
    assert headers["Content-Type"] == "application/pdf"
    assert "Set-Cookie" not in headers


def test_presigned_link_inline_and_expiry(s3_store: S3Store) -> None:
    stored = s3_store.put(image_bytes("JPEG"), filename="photo.jpg")
    url = s3_store.download_url(stored.sha256, filename="photo.jpg", expires=60, inline=True)
    assert url is not None
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["60"]
    _, headers = _fetch(url)
    assert headers["Content-Disposition"] == 'inline; filename="photo.jpg"'
    for expires in (0, -1, 3601, 7 * 24 * 3600):
        with pytest.raises(ValueError, match="expires"):
            s3_store.download_url(stored.sha256, filename="photo.jpg", expires=expires)


def test_s3_errors_other_than_missing_are_not_hidden(s3_store: S3Store) -> None:
    from botocore.exceptions import ClientError

    gone = S3Store(f"no-such-bucket-{uuid.uuid4().hex[:8]}", "proof", s3_store.client)
    with pytest.raises(ClientError):
        gone.put(pdf_bytes(), filename="invoice.pdf")


def test_s3_store_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="bucket"):
        S3Store("", "proof", client=None)
    with pytest.raises(ValueError, match="sse"):
        S3Store("b", "proof", client=None, sse="none")
    with pytest.raises(ValueError, match="KMS"):
        S3Store("b", "proof", client=None, kms_key_id="k")


# --- inspection, names and settings (pure) -------------------------------------------------------


def test_inspect_is_pure_and_names_the_hash() -> None:
    data = pdf_bytes()
    stored = inspect(data, filename="invoice.pdf")
    assert stored == storage.StoredFile(
        hashlib.sha256(data).hexdigest(), len(data), "application/pdf", "pdf"
    )


def test_default_size_limit_is_20_mb() -> None:
    assert storage.DEFAULT_MAX_BYTES == 20 * 1024 * 1024
    with pytest.raises(storage.UploadTooLarge, match=r"the file is 20\.5 MB; the limit is 20 MB"):
        inspect(b"%PDF-" + b"0" * (20 * 1024 * 1024 + 512 * 1024))


def test_pixel_limit_is_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our limit holds even when Pillow's process-wide one is switched off."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(storage.UploadImageTooLarge, match="30,000 x 30,000 pixels"):
        inspect(png_claiming(30_000, 30_000))
    with pytest.raises(storage.UploadImageTooLarge, match="the limit is 1 million pixels"):
        inspect(image_bytes("PNG", (1001, 1000), "L"), max_pixels=1_000_000)
    assert inspect(image_bytes("PNG", (1000, 1000), "L"), max_pixels=1_000_000).extension == "png"


def test_workbook_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    # Incompressible content over the unpacked limit: refused by size, not ratio.
    monkeypatch.setattr(storage, "MAX_XLSX_UNPACKED", 64 * 1024)
    big = xlsx_bytes(extra={"xl/media/image1.png": os.urandom(80 * 1024)})
    with pytest.raises(storage.UploadWorkbookTooLarge, match="unpacks to 8"):
        inspect(big)
    monkeypatch.undo()
    assert inspect(big).media_type == XLSX_TYPE

    monkeypatch.setattr(storage, "MAX_XLSX_ENTRIES", 5)
    with pytest.raises(storage.UploadWorkbookTooLarge, match="it holds 6 parts"):
        inspect(xlsx_bytes(extra={"docProps/app.xml": "<Properties/>"}))
    monkeypatch.undo()

    # A real sheet with repetitive rows compresses well but nowhere near 100:1.
    rows = "".join(
        f'<row r="{n}"><c r="A{n}"><v>{n * 7919 % 100003}</v></c></row>' for n in range(1, 60_000)
    )
    sheet = f'<?xml version="1.0"?><worksheet {NS}><sheetData>{rows}</sheetData></worksheet>'
    assert inspect(xlsx_bytes(extra={"xl/worksheets/sheet1.xml": sheet})).extension == "xlsx"


def test_encrypted_zip_entries_are_refused() -> None:
    data = bytearray(xlsx_bytes(method=zipfile.ZIP_STORED))
    # Set the "encrypted" flag in every local and central directory header.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            data[start + offset] |= 0x01
            start += 4
    with pytest.raises(storage.UploadTypeNotAccepted, match="password-protected"):
        inspect(bytes(data))


def test_text_starting_like_a_program_is_still_text() -> None:
    assert inspect(b"MZ-100,widget\nMZ-200,gadget\n").media_type == "text/csv"


def test_not_utf8_names_the_line() -> None:
    with pytest.raises(storage.UploadNotUtf8) as caught:
        inspect("a,b\n1,2\n3,Café\n".encode("cp1252"), filename="leads.csv")
    assert caught.value.message.startswith("line 3 contains text that is not UTF-8")
    assert caught.value.details["line"] == 3


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("invoice.pdf", "invoice.pdf"),
        ("C:\\Users\\ada\\Desktop\\invoice.pdf", "invoice.pdf"),
        ("../../etc/passwd", "passwd"),
        ('a"b.pdf', "ab.pdf"),
        ("line\r\nbreak.pdf", "line break.pdf"),
        ("\u202efdp.exe", "fdp.exe"),
        ("..", "proof"),
        ("", "proof"),
        (".hidden", "hidden"),
        ("x" * 300 + ".pdf", "x" * 146 + ".pdf"),
    ],
)
def test_display_name(given: str, shown: str) -> None:
    assert display_name(given) == shown


def test_download_filename_and_disposition() -> None:
    assert download_filename("scan.PDF", "pdf") == "scan.PDF"
    assert download_filename("photo.jpeg", "jpg") == "photo.jpeg"
    assert download_filename("photo.png", "pdf") == "photo.png.pdf"
    assert download_filename("", "csv") == "proof.csv"
    assert content_disposition("a.pdf") == 'attachment; filename="a.pdf"'
    assert content_disposition("a.pdf", inline=True) == 'inline; filename="a.pdf"'
    assert content_disposition("報告.pdf") == (
        "attachment; filename=\".pdf\"; filename*=UTF-8''%E5%A0%B1%E5%91%8A.pdf"
    )
    assert content_disposition("100%;x=y.pdf") == (
        "attachment; filename=\"100__x=y.pdf\"; filename*=UTF-8''100%25%3Bx%3Dy.pdf"
    )


def test_settings_from_environment(tmp_path: Path) -> None:
    defaults = Settings.from_env({"MDFLEDGER_INSTANCE_PATH": str(tmp_path)})
    assert defaults.proof_store == "local"
    assert defaults.proof_path == tmp_path / "proof"
    assert defaults.upload_max_bytes == 20 * 1024 * 1024
    assert (defaults.s3_prefix, defaults.s3_sse) == ("proof", "AES256")
    local = store_from_settings(defaults)
    assert isinstance(local, LocalStore) and local.root == tmp_path / "proof"

    settings = Settings.from_env(
        {
            "MDFLEDGER_PROOF_STORE": "s3",
            "MDFLEDGER_PROOF_DIR": str(tmp_path / "elsewhere"),
            "MDFLEDGER_S3_BUCKET": "acme-proof",
            "MDFLEDGER_S3_PREFIX": "mdf/proof",
            "MDFLEDGER_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "MDFLEDGER_S3_SSE": "aws:kms",
            "MDFLEDGER_S3_KMS_KEY_ID": "alias/proof",
            "MDFLEDGER_UPLOAD_MAX_BYTES": "5242880",
        }
    )
    settings.validate()
    assert settings.proof_path == tmp_path / "elsewhere"
    assert (settings.s3_bucket, settings.s3_prefix) == ("acme-proof", "mdf/proof")
    assert (settings.s3_sse, settings.s3_kms_key_id) == ("aws:kms", "alias/proof")
    assert settings.upload_max_bytes == 5 * 1024 * 1024
    s3 = store_from_settings(settings, client=object())
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.sse, s3.kms_key_id, s3.max_bytes) == (
        "acme-proof",
        "mdf/proof",
        "aws:kms",
        "alias/proof",
        5 * 1024 * 1024,
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"proof_store": "ftp"}, "MDFLEDGER_PROOF_STORE must be local or s3"),
        ({"proof_store": "s3"}, "needs MDFLEDGER_S3_BUCKET"),
        ({"s3_sse": "none"}, "MDFLEDGER_S3_SSE must be AES256 or aws:kms"),
        ({"s3_kms_key_id": "alias/x"}, "MDFLEDGER_S3_KMS_KEY_ID is set but"),
        ({"s3_endpoint_url": "127.0.0.1:9000"}, "must start with http"),
        ({"s3_prefix": "proof/../other"}, "MDFLEDGER_S3_PREFIX must not contain"),
        ({"upload_max_bytes": 0}, "MDFLEDGER_UPLOAD_MAX_BYTES must be a positive"),
    ],
)
def test_bad_storage_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings(**values).validate()


@pytest.mark.parametrize("raw", ["20MB", "-1", "1.5", "\uff12\uff10"])
def test_upload_limit_must_be_a_whole_number(raw: str) -> None:
    with pytest.raises(ConfigError, match="MDFLEDGER_UPLOAD_MAX_BYTES must be a whole number"):
        Settings.from_env({"MDFLEDGER_UPLOAD_MAX_BYTES": raw})
