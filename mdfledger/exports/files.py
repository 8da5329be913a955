"""Where finished export files are kept until they expire: a local directory (the embedded
default, instance/exports/) or, when proof documents go to S3, the same bucket under the key
prefix exports/ (with the proof store's encryption settings). Files go in and out as streams,
so memory stays flat whatever their size.

Keys are relative paths made by the export jobs ("42/3f9c….csv"); nothing a user typed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from botocore.exceptions import ClientError

from mdfledger.errors import NotFound

if TYPE_CHECKING:
    from mdfledger.config import Settings

APP_KEY = "mdfledger.export_files"
S3_PREFIX = "exports"
CHUNK = 1024 * 1024
_KEY = re.compile(r"^[0-9]+/[0-9a-f]{32}\.[a-z]{2,10}$")


class ExportFileMissing(NotFound):
    code = "export_file_missing"


class ExportFiles(Protocol):
    def put(self, key: str, source: BinaryIO, *, media_type: str) -> None:
        """Store the stream's bytes (from its current position) under `key`."""
        ...

    def chunks(self, key: str) -> Iterator[bytes]:
        """The stored bytes, chunk by chunk (ExportFileMissing when there is no such file)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the file; a file already gone is not an error."""
        ...


def check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"not an export file key: {key!r}")
    return key


class LocalFiles:
    """Files under root/<key>, written to a temporary file beside it and renamed into place."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, source: BinaryIO, *, media_type: str) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".part.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                shutil.copyfileobj(source, file, CHUNK)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def chunks(self, key: str) -> Iterator[bytes]:
        try:
            file = self.path(key).open("rb")
        except FileNotFoundError:
            raise ExportFileMissing("the export's file is missing") from None
        return _read(file)

    def delete(self, key: str) -> None:
        path = self.path(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(OSError):  # the job's folder, once empty
            path.parent.rmdir()


def _read(file: BinaryIO) -> Iterator[bytes]:
    with file:
        while chunk := file.read(CHUNK):
            yield chunk


class S3Files:
    """Objects at exports/<key> in the proof bucket, encrypted at rest like the proof
    documents, uploaded in parts by boto3's upload_fileobj and read back as a stream."""

    def __init__(self, bucket: str, client: Any, sse: str = "AES256", kms_key_id: str = "") -> None:
        if not bucket:
            raise ValueError("S3Files needs a bucket")
        self.bucket, self.client, self.sse, self.kms_key_id = bucket, client, sse, kms_key_id

    def object_key(self, key: str) -> str:
        return f"{S3_PREFIX}/{check_key(key)}"

    def put(self, key: str, source: BinaryIO, *, media_type: str) -> None:
        extra = {"ContentType": media_type, "ServerSideEncryption": self.sse}
        if self.kms_key_id:
            extra["SSEKMSKeyId"] = self.kms_key_id
        self.client.upload_fileobj(source, self.bucket, self.object_key(key), ExtraArgs=extra)

    def chunks(self, key: str) -> Iterator[bytes]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                raise ExportFileMissing("the export's file is missing") from None
            raise
        return _stream(response["Body"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))


def _stream(body: Any) -> Iterator[bytes]:
    with contextlib.closing(body):
        yield from body.iter_chunks(CHUNK)


def files_from_settings(settings: Settings | None, proof_store: Any = None) -> ExportFiles:
    """S3 when proof documents go to S3 (reusing the proof store's client), else a local
    directory under the instance path."""
    from mdfledger.config import Settings

    settings = settings or Settings()
    if settings.proof_store == "s3":
        client = getattr(proof_store, "client", None)
        if client is None:
            import boto3

            from mdfledger.storage import S3_CLIENT_CONFIG

            client = boto3.session.Session().client(
                "s3", endpoint_url=settings.s3_endpoint_url or None, config=S3_CLIENT_CONFIG
            )
        return S3Files(settings.s3_bucket, client, settings.s3_sse, settings.s3_kms_key_id)
    return LocalFiles(settings.instance_path / "exports")


def app_files() -> ExportFiles:
    """The running app's export store (set up with its jobs: mdfledger.jobs.init_app)."""
    from flask import current_app

    return current_app.extensions[APP_KEY]
