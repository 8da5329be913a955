"""The photo check: the file opens as an image, and when the camera recorded when it was taken,
that day is near the activity."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta

from PIL import Image, UnidentifiedImageError

from mdfledger.storage import MAX_IMAGE_PIXELS
from mdfledger.verification.outcome import Finding, Outcome, Unreadable

EXIF_IFD = 0x8769
DATE_TIME_ORIGINAL = 0x9003
DATE_TIME = 0x0132


def taken_on(image: Image.Image) -> date | None:
    """The day the camera says the photo was taken (EXIF), if it says."""
    exif = image.getexif()
    raw = exif.get_ifd(EXIF_IFD).get(DATE_TIME_ORIGINAL) or exif.get(DATE_TIME)
    if not isinstance(raw, str):
        return None
    try:
        return datetime.strptime(raw.strip()[:10], "%Y:%m:%d").date()  # noqa: DTZ007 - a day
    except ValueError:
        return None


def check_photo(data: bytes, *, starts_on: date, ends_on: date, grace_days: int) -> Finding:
    """PASS for a readable photo taken near the activity (or with no date recorded);
    INCONCLUSIVE when the camera dated it well away from the activity."""
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:  # judged from the header, before decoding
            raise Unreadable(f"the image is {width:,} x {height:,} pixels, too large to check")
        day = taken_on(image)
        Image.open(io.BytesIO(data)).verify()  # verify() wants an image nothing has read yet
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, RuntimeError) as error:
        raise Unreadable(f"the file is not a readable image ({error})") from None
    evidence = {
        "width": width,
        "height": height,
        "format": image.format,
        "taken_on": None if day is None else day.isoformat(),
    }
    size = f"{width} x {height} {image.format or 'image'}"
    if day is None:
        return Finding(
            Outcome.PASS, 80, f"Photo opens ({size}); the camera recorded no date", evidence
        )
    first, last = starts_on - timedelta(days=grace_days), ends_on + timedelta(days=grace_days)
    if first <= day <= last:
        return Finding(
            Outcome.PASS, 100, f"Photo ({size}) taken on {day.isoformat()}, at the activity",
            evidence,
        )  # fmt: skip
    return Finding(
        Outcome.INCONCLUSIVE,
        30,
        f"Photo ({size}) was taken on {day.isoformat()}, not during the activity"
        f" ({starts_on.isoformat()} to {ends_on.isoformat()})",
        evidence,
    )
