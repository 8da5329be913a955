"""Proof documents: checked, then stored by content, in a local directory or on S3.

Every upload goes through `inspect` first, which is pure (bytes in, facts or an error out) and
shared by both stores, so a file is accepted or refused the same way wherever it would land:

- the size limit is checked before anything else, so a huge body is never hashed or parsed;
- the type comes from the content, never the name: PDF, PNG, JPEG, XLSX or CSV text. A name
  whose extension disagrees is not an error, but the stored extension is the sniffed one;
- images are decoded under an explicit pixel limit (decompression bombs) and truncated or
  damaged ones are refused; workbooks are checked in the ZIP directory, without unpacking,
  for their unpacked size and compression ratio (ZIP bombs) and for macros;
- a refused file raises an `UploadRejected` with a stable code and a sentence a partner
  understands, and nothing is stored.

Files are addressed by their SHA-256, so storing the same content twice keeps one copy, and
reading one back checks that the bytes still hash to their name.

`LocalStore` keeps files under root/ab/cd/<sha256>, written atomically. `S3Store` keeps them at
<prefix>/ab/<sha256> with server-side encryption and hands reviewers short-lived presigned
links. `store_from_settings` picks one from the MDFLEDGER_PROOF_STORE settings; AWS credentials
and region come from boto3's usual chain (environment, shared config, instance role).
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import hashlib
import io
import os
import re
import tempfile
import unicodedata
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import quote

from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from mdfledger.config import DEFAULT_UPLOAD_MAX_BYTES, S3_SSE_MODES
from mdfledger.csvfile import SAVE_AS_HINT, count_lines, human_size, size_message
from mdfledger.errors import DomainError, NotFound, ValidationError

if TYPE_CHECKING:
    from mdfledger.config import Settings

DEFAULT_MAX_BYTES = DEFAULT_UPLOAD_MAX_BYTES  # 20 MB; MDFLEDGER_UPLOAD_MAX_BYTES
MAX_IMAGE_PIXELS = 50_000_000  # a 48-megapixel phone photo fits; a bomb of 30000 x 30000 not
# Workbooks, read from the ZIP directory. Apache POI refuses entries that inflate more than
# 100:1 by default; a real sheet compresses 5-30:1. The ratio is only judged on entries (and
# totals) over 1 MB, where a bomb would matter.
MAX_XLSX_UNPACKED = 200 * 1024 * 1024
MAX_XLSX_RATIO = 100
XLSX_RATIO_FLOOR = 1024 * 1024
MAX_XLSX_ENTRIES = 10_000
MAX_CONTENT_TYPES_BYTES = 1024 * 1024  # [Content_Types].xml is read to spot macro workbooks
PDF_EOF_WINDOW = 1024  # "%%EOF" must be this close to the end, as Acrobat requires
MAX_PRESIGN_SECONDS = 3600

# Signature v4 everywhere (presigned links included), bounded retries and timeouts.
S3_CLIENT_CONFIG = Config(
    signature_version="s3v4",
    retries={"max_attempts": 3, "mode": "standard"},
    connect_timeout=5,
    read_timeout=60,
)

ACCEPTED = "PDF, PNG, JPEG, CSV or XLSX"
_SHA256 = re.compile(r"[0-9a-f]{64}")
# C0 controls other than tab, line feed, form feed and carriage return: binary data, not text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


# --- what is accepted ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileType:
    name: str  # as partners know it: "PDF"
    media_type: str
    extension: str  # stored and offered for download
    aliases: tuple[str, ...] = ()  # other extensions that name the same type


PDF = FileType("PDF", "application/pdf", "pdf")
PNG = FileType("PNG", "image/png", "png")
JPEG = FileType("JPEG", "image/jpeg", "jpg", ("jpeg", "jpe", "jfif"))
CSV = FileType("CSV", "text/csv", "csv", ("txt", "tsv"))
XLSX = FileType("XLSX", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx")
FILE_TYPES = (PDF, PNG, JPEG, CSV, XLSX)


@dataclass(frozen=True)
class StoredFile:
    """A checked file: its content hash (its name in the store), size and sniffed type."""

    sha256: str
    size: int
    media_type: str
    extension: str


# --- errors --------------------------------------------------------------------------------------


class UploadRejected(ValidationError):
    """A file that is not stored. Subclasses say why; every one has its own stable code.
    details: `reason` (a stable word for what was found, e.g. "zip", "exe") and `filename`."""

    code = "upload_rejected"


class UploadEmpty(UploadRejected):
    code = "upload_empty"


class UploadTooLarge(UploadRejected):
    code = "upload_too_large"


class UploadTypeNotAccepted(UploadRejected):
    code = "upload_type_not_accepted"


class UploadNotUtf8(UploadRejected):
    code = "upload_not_utf8"


class UploadDamaged(UploadRejected):
    code = "upload_damaged"


class UploadImageTooLarge(UploadRejected):
    code = "upload_image_too_large"


class UploadWorkbookTooLarge(UploadRejected):
    code = "upload_workbook_too_large"


class UploadHasMacros(UploadRejected):
    code = "upload_macros"


class ProofNotFound(NotFound):
    code = "proof_not_found"


class ProofCorrupt(DomainError):
    """A stored file no longer hashes to its name: the store was altered or damaged."""

    code = "proof_corrupt"
    http_status = 500


# --- inspection (pure) ---------------------------------------------------------------------------


def inspect(
    data: bytes,
    *,
    filename: str = "",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> StoredFile:
    """Check an upload and say how it will be stored, or raise UploadRejected.

    `filename` is only used to word messages (and is returned in their details); the type is
    always sniffed from the content.
    """
    size = len(data)
    shown = display_name(filename) if filename else ""
    if size > max_bytes:
        raise UploadTooLarge(
            f"{size_message(size, max_bytes)}: upload a smaller file, or split it",
            reason="size",
            filename=shown,
            size=size,
            limit=max_bytes,
        )
    if size == 0:
        raise UploadEmpty(
            "the file is empty: choose the file again and upload it", reason="empty", filename=shown
        )
    file_type = _sniff(data, filename, shown, max_pixels)
    return StoredFile(
        sha256=hashlib.sha256(data).hexdigest(),
        size=size,
        media_type=file_type.media_type,
        extension=file_type.extension,
    )


# Files refused by their first bytes: (magic, reason, what it is, what to do instead).
_REFUSED_MAGIC: tuple[tuple[bytes, str, str, str], ...] = (
    (b"GIF87a", "gif", "a GIF image", "save it as PNG"),
    (b"GIF89a", "gif", "a GIF image", "save it as PNG"),
    (b"II*\x00", "tiff", "a TIFF image", "save it as PNG or PDF"),
    (b"MM\x00*", "tiff", "a TIFF image", "save it as PNG or PDF"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "ole",
        "an older Office document (.doc, .xls, .ppt) or a password-protected Office file",
        "save it as PDF, or as an .xlsx workbook without a password",
    ),
    (b"\x7fELF", "exe", "an executable program", ""),
    (b"\xca\xfe\xba\xbe", "exe", "an executable program", ""),
    (b"\xcf\xfa\xed\xfe", "exe", "an executable program", ""),
    (b"\xce\xfa\xed\xfe", "exe", "an executable program", ""),
    (b"\xfe\xed\xfa\xce", "exe", "an executable program", ""),
    (b"\xfe\xed\xfa\xcf", "exe", "an executable program", ""),
    (b"\x1f\x8b", "gzip", "a compressed archive (gzip)", ""),
    (b"Rar!\x1a\x07", "rar", "a RAR archive", ""),
    (b"7z\xbc\xaf\x27\x1c", "7z", "a 7-Zip archive", ""),
    (b"{\\rtf", "rtf", "a Rich Text document", "save it as PDF"),
)


def _sniff(data: bytes, filename: str, shown: str, max_pixels: int) -> FileType:
    if data.startswith(b"%PDF-"):
        _check_pdf(data, shown)
        return PDF
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        _check_image(data, "PNG", shown, max_pixels)
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        _check_image(data, "JPEG", shown, max_pixels)
        return JPEG
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        _check_workbook(data, shown)
        return XLSX
    for magic, reason, label, hint in _REFUSED_MAGIC:
        if data.startswith(magic):
            raise _not_accepted(label, reason, shown, hint)
    # A DOS/Windows program starts "MZ" and has NUL bytes in its header; text starting "MZ"
    # (a product code, say) has none and goes on to the text checks.
    if data.startswith(b"MZ") and b"\x00" in data[:64]:
        raise _not_accepted("an executable program", "exe", shown)
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc"):
        raise _not_accepted("an HEIC photo", "heic", shown, "export or share it as JPEG")
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        raise _not_accepted("a WebP image", "webp", shown, "save it as PNG or JPEG")
    _check_text(data, filename, shown)
    return CSV


def _not_accepted(label: str, reason: str, shown: str, hint: str = "") -> UploadTypeNotAccepted:
    what = f"this file is {label}, not" if label else "this file is not"
    message = f"{what} a type we accept: upload {ACCEPTED}"
    if hint:
        message += f" ({hint})"
    return UploadTypeNotAccepted(message, reason=reason, filename=shown)


def _check_pdf(data: bytes, shown: str) -> None:
    if data.rfind(b"%%EOF", max(0, len(data) - PDF_EOF_WINDOW)) < 0:
        raise UploadDamaged(
            "this PDF is incomplete: its end is missing, so it was probably cut off while "
            "downloading or saving; save it again and upload the new file",
            reason="pdf_truncated",
            filename=shown,
        )


def _check_image(data: bytes, kind: str, shown: str, max_pixels: int) -> None:
    """Decode the whole image under an explicit pixel limit.

    The limit is ours, not Pillow's process-wide Image.MAX_IMAGE_PIXELS, so it holds whatever
    other code sets there; Pillow's own bomb error (raised while reading the header when an
    image is over twice its limit) is refused the same way. A truncated image fails to load
    (unless someone set ImageFile.LOAD_TRUNCATED_IMAGES, which this project never does).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[kind]) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise _image_too_large(shown, max_pixels, f"{width:,} x {height:,} pixels")
                image.verify()  # chunk checksums (PNG); structure
            with Image.open(io.BytesIO(data), formats=[kind]) as image:
                if kind == "JPEG":
                    # Decode at 1/8 scale: every byte of the image data is still read (so a
                    # cut-off file fails) with an eighth of the memory.
                    image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
                image.load()
    except UploadRejected:
        raise
    except Image.DecompressionBombError:
        raise _image_too_large(shown, max_pixels, "") from None
    except Exception:  # Pillow reports malformed data with many exception types
        raise UploadDamaged(
            f"this {kind} image is damaged or incomplete, so it cannot be opened; "
            "save or export it again and upload the new file",
            reason="image_damaged",
            filename=shown,
        ) from None


def _image_too_large(shown: str, max_pixels: int, size: str) -> UploadImageTooLarge:
    limit = f"{max_pixels / 1_000_000:,.0f} million pixels"
    what = f"this image is {size}; the limit is {limit}" if size else f"this image is over {limit}"
    return UploadImageTooLarge(
        f"{what}: resize it and upload it again", reason="pixels", filename=shown, limit=max_pixels
    )


def _check_workbook(data: bytes, shown: str) -> None:
    """An .xlsx workbook, judged from the ZIP directory without unpacking anything but the
    small [Content_Types].xml. Readers built on Python's zipfile stop at an entry's declared
    size, so the declared sizes checked here bound what any later reader unpacks."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
            names = {entry.filename.casefold() for entry in entries}
            is_workbook = "[content_types].xml" in names and "xl/workbook.xml" in names
            if not is_workbook:
                raise _zip_kind(names, shown)
            if len(entries) > MAX_XLSX_ENTRIES:
                raise _workbook_too_large(shown, f"it holds {len(entries):,} parts")
            if any(entry.flag_bits & 0x1 for entry in entries):
                raise UploadTypeNotAccepted(
                    "this workbook is password-protected: remove the password, save it and "
                    "upload it again",
                    reason="encrypted",
                    filename=shown,
                )
            _check_unpacked_size(entries, shown)
            if any(name.rsplit("/", 1)[-1] == "vbaproject.bin" for name in names):
                raise _macros(shown)
            content_types = next(
                e for e in entries if e.filename.casefold() == "[content_types].xml"
            )
            if content_types.file_size > MAX_CONTENT_TYPES_BYTES:
                raise _workbook_too_large(shown, "its list of parts is too large")
            if b"macroenabled" in archive.read(content_types).lower():
                raise _macros(shown)
    except UploadRejected:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError, OSError):
        raise UploadDamaged(
            "this file is a damaged or incomplete ZIP archive or workbook; save it again and "
            "upload the new file",
            reason="zip_damaged",
            filename=shown,
        ) from None


def _zip_kind(names: set[str], shown: str) -> UploadTypeNotAccepted:
    if "word/document.xml" in names:
        return _not_accepted("a Word document", "docx", shown, "save it as PDF")
    if "ppt/presentation.xml" in names:
        return _not_accepted("a PowerPoint presentation", "pptx", shown, "save it as PDF")
    if "xl/workbook.bin" in names:
        return _not_accepted(
            "a binary Excel workbook (.xlsb)", "xlsb", shown, "save it as an Excel Workbook (.xlsx)"
        )
    if "mimetype" in names and "meta-inf/manifest.xml" in names:
        return _not_accepted(
            "an OpenDocument file", "opendocument", shown, "save it as PDF or XLSX"
        )
    return _not_accepted("a ZIP archive", "zip", shown, "upload the files inside it one by one")


def _check_unpacked_size(entries: list[zipfile.ZipInfo], shown: str) -> None:
    unpacked = sum(entry.file_size for entry in entries)
    packed = sum(entry.compress_size for entry in entries)
    if unpacked > MAX_XLSX_UNPACKED:
        raise _workbook_too_large(
            shown,
            f"it unpacks to {human_size(unpacked)}; the limit is {human_size(MAX_XLSX_UNPACKED)}",
        )
    suspicious = [
        entry
        for entry in entries
        if entry.file_size > XLSX_RATIO_FLOOR
        and entry.file_size > MAX_XLSX_RATIO * max(1, entry.compress_size)
    ]
    if suspicious or (unpacked > XLSX_RATIO_FLOOR and unpacked > MAX_XLSX_RATIO * max(1, packed)):
        raise _workbook_too_large(
            shown,
            f"it unpacks to {human_size(unpacked)} from {human_size(packed)}, far more than "
            "a real spreadsheet does",
        )


def _workbook_too_large(shown: str, why: str) -> UploadWorkbookTooLarge:
    return UploadWorkbookTooLarge(
        f"this workbook is not accepted: {why}. Save it again from your spreadsheet program "
        "(remove unused sheets and images), or upload the data as CSV",
        reason="zip_bomb",
        filename=shown,
    )


def _macros(shown: str) -> UploadHasMacros:
    return UploadHasMacros(
        "this workbook contains macros (an .xlsm file), which we do not accept: save it as an "
        "Excel Workbook (.xlsx) and upload that",
        reason="macros",
        filename=shown,
    )


def _check_text(data: bytes, filename: str, shown: str) -> None:
    """CSV: UTF-8 (with or without BOM) or UTF-16 with BOM, as csvfile.read_table reads it."""
    named_as_text = filename.casefold().endswith((".csv", ".txt", ".tsv"))
    binary = (
        UploadTypeNotAccepted(
            f"this file contains binary data, not CSV text; {SAVE_AS_HINT}",
            reason="binary",
            filename=shown,
        )
        if named_as_text
        else _not_accepted("", "binary", shown)
    )
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if not utf16 and b"\x00" in data:
        raise binary
    codec, label = ("utf-16", "UTF-16") if utf16 else ("utf-8-sig", "UTF-8")
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        line = count_lines(exc.object[: exc.start].decode(codec)) + 1
        raise UploadNotUtf8(
            f"line {line} contains text that is not {label}; {SAVE_AS_HINT}",
            reason="encoding",
            filename=shown,
            line=line,
        ) from None
    if _CONTROL.search(text):
        raise binary
    start = text.lstrip()[:1024].casefold()
    if not start:
        raise UploadEmpty(
            "the file is empty: choose the file again and upload it", reason="empty", filename=shown
        )
    if start.startswith("<"):
        if "<svg" in start:
            raise _not_accepted("an SVG image", "svg", shown, "save it as PNG or PDF")
        if "<html" in start or "<!doctype html" in start:
            raise _not_accepted("a web page (HTML)", "html", shown, "print it to PDF")
        raise _not_accepted("an XML or HTML document", "xml", shown, "print it to PDF")


# --- names ---------------------------------------------------------------------------------------


def display_name(filename: str, *, limit: int = 150) -> str:
    """The last part of a name as a person gave it, safe to show and to put in a header: no
    folders, no control or invisible formatting characters (e.g. right-to-left overrides),
    no quotes or backslashes, at most `limit` characters; "proof" if nothing is left."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        " " if ch.isspace() else ch
        for ch in name
        if unicodedata.category(ch)[0] != "C" or ch.isspace()
    )
    name = " ".join(name.replace('"', "").split()).lstrip(".").strip()
    if len(name) > limit:
        _, dot, ext = name.rpartition(".")
        ext = ext if dot and len(ext) <= 10 else ""
        name = name[: limit - len(ext) - 1].rstrip() + ("." + ext if ext else "")
        name = name[:limit]
    return name or "proof"


def download_filename(filename: str, extension: str) -> str:
    """The name to offer a download under: the given name, ending in the sniffed type's
    extension ("scan.png" of a PDF becomes "scan.png.pdf")."""
    name = display_name(filename)
    spellings = {extension}
    for file_type in FILE_TYPES:
        if file_type.extension == extension:
            spellings.update(file_type.aliases)
    _, dot, ext = name.rpartition(".")
    if dot and ext.casefold() in spellings:
        return name
    return f"{name}.{extension}"


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """A Content-Disposition value naming the file: an ASCII `filename` for old clients and
    an RFC 5987 `filename*` with the exact name when it is not plain ASCII."""
    name = display_name(filename)
    fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    fallback = re.sub(r"[^A-Za-z0-9 ._()+,=@&#!~-]", "_", fallback).strip() or "proof"
    value = f'{"inline" if inline else "attachment"}; filename="{fallback}"'
    if fallback != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


# --- stores --------------------------------------------------------------------------------------


@runtime_checkable
class ProofStore(Protocol):
    max_bytes: int

    def put(self, data: bytes, *, filename: str) -> StoredFile:
        """Check (inspect) and store; the same content again is stored once."""
        ...

    def open(self, sha256: str) -> bytes:
        """The stored bytes, checked against their hash (ProofNotFound, ProofCorrupt)."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def download_url(
        self, sha256: str, *, filename: str, expires: int = 300, inline: bool = False
    ) -> str | None:
        """A short-lived link for the browser, or None when the app must serve the bytes."""
        ...


def _check_sha(sha256: str) -> None:
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ProofNotFound("no such proof document", sha256=str(sha256)[:80])


def _verified(sha256: str, data: bytes) -> bytes:
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ProofCorrupt(
            "a stored proof document no longer matches its fingerprint; restore it from backup",
            sha256=sha256,
        )
    return data


class LocalStore:
    """Files under root/ab/cd/<sha256>. Writes go to a temporary file in the target folder,
    are flushed to disk and renamed into place, so a reader never sees half a file."""

    def __init__(
        self,
        root: Path | str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = MAX_IMAGE_PIXELS,
    ) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    def path(self, sha256: str) -> Path:
        _check_sha(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, *, filename: str) -> StoredFile:
        stored = inspect(
            data, filename=filename, max_bytes=self.max_bytes, max_pixels=self.max_pixels
        )
        target = self.path(stored.sha256)
        if self._intact(target, stored):
            return stored
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(
            dir=target.parent, prefix=f".{stored.sha256[:12]}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        _fsync_directory(target.parent)
        return stored

    def open(self, sha256: str) -> bytes:
        try:
            data = self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise ProofNotFound("no such proof document", sha256=sha256) from None
        return _verified(sha256, data)

    def exists(self, sha256: str) -> bool:
        try:
            return self.path(sha256).is_file()
        except ProofNotFound:
            return False

    def download_url(
        self, sha256: str, *, filename: str, expires: int = 300, inline: bool = False
    ) -> str | None:
        return None  # the app streams the bytes itself (open + content_disposition)

    @staticmethod
    def _intact(target: Path, stored: StoredFile) -> bool:
        """Already stored, whole and unaltered (a damaged copy is replaced)."""
        try:
            if target.stat().st_size != stored.size:
                return False
            digest = hashlib.sha256()
            with target.open("rb") as file:
                for chunk in iter(lambda: file.read(1024 * 1024), b""):
                    digest.update(chunk)
        except FileNotFoundError:
            return False
        return digest.hexdigest() == stored.sha256


def _fsync_directory(path: Path) -> None:
    """Make the rename durable. Best effort: not every platform can open a directory."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class S3Store:
    """Objects at <prefix>/<sha256[:2]>/<sha256>, encrypted at rest (SSE-S3 or SSE-KMS),
    with the sniffed Content-Type and an SHA-256 checksum S3 verifies on upload.

    The credentials need s3:PutObject, s3:GetObject and s3:ListBucket on the bucket (without
    ListBucket, S3 answers 403 instead of 404 for a missing object); with SSE-KMS also
    kms:GenerateDataKey and kms:Decrypt on the key.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        client: Any,
        sse: str = "AES256",
        *,
        kms_key_id: str = "",
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = MAX_IMAGE_PIXELS,
    ) -> None:
        if not bucket:
            raise ValueError("S3Store needs a bucket")
        if sse not in S3_SSE_MODES:
            raise ValueError(f"sse must be one of {S3_SSE_MODES}, not {sse!r}")
        if kms_key_id and sse != "aws:kms":
            raise ValueError("a KMS key id needs sse='aws:kms'")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.sse = sse
        self.kms_key_id = kms_key_id
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    def key(self, sha256: str) -> str:
        _check_sha(sha256)
        name = f"{sha256[:2]}/{sha256}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def put(self, data: bytes, *, filename: str) -> StoredFile:
        stored = inspect(
            data, filename=filename, max_bytes=self.max_bytes, max_pixels=self.max_pixels
        )
        if self.exists(stored.sha256):
            return stored
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.key(stored.sha256),
            "Body": data,
            "ContentType": stored.media_type,
            "ServerSideEncryption": self.sse,
            "ChecksumSHA256": base64.b64encode(bytes.fromhex(stored.sha256)).decode("ascii"),
        }
        if self.kms_key_id:
            params["SSEKMSKeyId"] = self.kms_key_id
        self.client.put_object(**params)
        return stored

    def open(self, sha256: str) -> bytes:
        key = self.key(sha256)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                raise ProofNotFound("no such proof document", sha256=sha256) from None
            raise
        with contextlib.closing(response["Body"]) as body:
            return _verified(sha256, body.read())

    def exists(self, sha256: str) -> bool:
        try:
            key = self.key(sha256)
        except ProofNotFound:
            return False
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    def download_url(
        self, sha256: str, *, filename: str, expires: int = 300, inline: bool = False
    ) -> str | None:
        """A presigned GET link valid for `expires` seconds (at most an hour) that names the
        file as `filename` (see download_filename). It does not check that the object exists."""
        if not 1 <= expires <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires must be 1..{MAX_PRESIGN_SECONDS} seconds, not {expires}")
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.key(sha256),
                "ResponseContentDisposition": content_disposition(filename, inline=inline),
            },
            ExpiresIn=expires,
            HttpMethod="GET",
        )


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}


APP_KEY = "mdfledger.proof_store"


def app_store() -> ProofStore:
    """The running app's proof store (made once by create_app from its settings)."""
    from flask import current_app

    return current_app.extensions[APP_KEY]


def store_from_settings(settings: Settings, *, client: Any = None) -> ProofStore:
    """The store the settings name. `client` replaces the boto3 S3 client (tests)."""
    if settings.proof_store == "s3":
        if client is None:
            import boto3  # here, so the local store never pays for loading boto3's models

            client = boto3.session.Session().client(
                "s3", endpoint_url=settings.s3_endpoint_url or None, config=S3_CLIENT_CONFIG
            )
        return S3Store(
            settings.s3_bucket,
            settings.s3_prefix,
            client,
            settings.s3_sse,
            kms_key_id=settings.s3_kms_key_id,
            max_bytes=settings.upload_max_bytes,
        )
    return LocalStore(settings.proof_path, max_bytes=settings.upload_max_bytes)
