"""The attachment store: evidence files on local disk, addressed by the SHA-256 of what is kept.

Photos are checked to be real images (Pillow decodes them fully), turned upright, re-encoded
without their metadata (EXIF, GPS location, XMP, comments: a customer's photo must not carry
their home's coordinates to every agent) and given a thumbnail. Videos and other documents are
kept byte for byte, within size limits. The same content sent twice is stored once.

Nothing here knows where the bytes came from (Telegram, the web chat, the API): callers pass
bytes and get a `StoredFile` to record as an `Attachment` row.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tickets.exceptions import InvalidInput

if TYPE_CHECKING:
    from PIL import Image

    from tickets.settings import Settings

MB = 1024 * 1024

# Formats kept as photos, with their MIME type and file extension. Anything else that claims
# to be an image is refused as a photo (a caller may still keep it as a plain document).
PHOTO_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("image/jpeg", ".jpg"),
    "PNG": ("image/png", ".png"),
    "WEBP": ("image/webp", ".webp"),
}

# What an agent may attach to a reply (a photo, a size chart, a shipping label): the type is
# read from the file's first bytes, never from its name or the browser's word.
AGENT_FILE_TYPES = "JPEG, PNG, WebP, PDF"
_PHOTO_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
_PDF_MAGIC = b"%PDF-"

# File name extensions for documents, by MIME type; unknown types keep no extension.
DOCUMENT_EXTENSIONS: dict[str, str] = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "application/pdf": ".pdf",
    "image/gif": ".gif",
    "image/heic": ".heic",
    "text/plain": ".txt",
}


class MediaRejected(InvalidInput):
    """A file the store will not keep; `reason` is one of too_large, not_an_image, empty,
    too_many (files in one request), not_allowed (a type agents may not send)."""

    code = "media_rejected"

    def __init__(self, message: str, *, reason: str, limit: int | None = None) -> None:
        super().__init__(message, [{"loc": "file", "msg": message}])
        self.reason = reason
        self.limit = limit


@dataclass(frozen=True)
class MediaLimits:
    """How big a file may be, per kind (bytes), and how large a photo may decode (pixels)."""

    photo_bytes: int = 10 * MB
    video_bytes: int = 20 * MB
    document_bytes: int = 20 * MB
    max_pixels: int = 50_000_000
    thumbnail_px: int = 320
    # How many files one request may carry.
    max_files: int = 10

    def for_kind(self, kind: str) -> int:
        """The size limit of a kind (photo, video, document)."""
        return {"photo": self.photo_bytes, "video": self.video_bytes}.get(kind, self.document_bytes)


def limits_from(settings: Settings) -> MediaLimits:
    """The limits the shop's settings name (`AFTERSALES_MEDIA_MAX_*`)."""
    return MediaLimits(
        photo_bytes=settings.media_max_photo_bytes,
        video_bytes=settings.media_max_video_bytes,
        document_bytes=settings.media_max_document_bytes,
        max_files=settings.media_max_files,
    )


@dataclass(frozen=True)
class StoredFile:
    """A file in the store, with what an `Attachment` row records about it."""

    kind: str  # photo | video | document
    sha256: str
    storage_key: str
    size: int
    mime: str
    original_name: str = ""
    thumbnail_key: str | None = None
    width: int | None = None
    height: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (kept in a conversation's state until the case exists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredFile:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})


class AttachmentStore:
    """Evidence files under `root`: `<kind>/<aa>/<sha256><ext>`, thumbnails under `thumbs/`."""

    def __init__(self, root: Path, limits: MediaLimits | None = None) -> None:
        self.root = Path(root)
        self.limits = limits or MediaLimits()

    def path(self, storage_key: str) -> Path:
        """Where a stored file lives on disk (refuses keys that would leave the store)."""
        path = (self.root / storage_key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise InvalidInput("bad storage key", [{"loc": "storage_key", "msg": storage_key}])
        return path

    def check_size(self, kind: str, size: int | None) -> None:
        """Refuse a file before downloading it when its announced size is over the limit."""
        limit = self.limits.for_kind(kind)
        if size is not None and size > limit:
            raise MediaRejected(
                f"{kind} of {size} bytes is over the limit of {limit} bytes",
                reason="too_large",
                limit=limit,
            )

    def store_photo(self, data: bytes, *, original_name: str = "") -> StoredFile:
        """Verify, clean and keep a photo; raises MediaRejected when it is not a real image
        or is too large."""
        self._check_bytes("photo", data)
        cleaned, fmt, width, height, thumb = self._clean_image(data)
        mime, ext = PHOTO_FORMATS[fmt]
        sha = hashlib.sha256(cleaned).hexdigest()
        key = f"photo/{sha[:2]}/{sha}{ext}"
        thumb_key = f"thumbs/{sha[:2]}/{sha}.jpg"
        self._write(key, cleaned)
        self._write(thumb_key, thumb)
        return StoredFile(
            kind="photo",
            sha256=sha,
            storage_key=key,
            size=len(cleaned),
            mime=mime,
            original_name=original_name,
            thumbnail_key=thumb_key,
            width=width,
            height=height,
        )

    def store_file(
        self, data: bytes, *, kind: str, mime: str | None, original_name: str = ""
    ) -> StoredFile:
        """Keep a video or a document as it is. A document that is really a photo (sent as a
        file to avoid compression) is kept as a photo: cleaned of its metadata like any other."""
        mime = (mime or "application/octet-stream").lower()
        if kind == "document" and mime in {m for m, _ in PHOTO_FORMATS.values()}:
            return self.store_photo(data, original_name=original_name)
        self._check_bytes(kind, data)
        sha = hashlib.sha256(data).hexdigest()
        ext = DOCUMENT_EXTENSIONS.get(mime, "")
        key = f"{kind}/{sha[:2]}/{sha}{ext}"
        self._write(key, data)
        return StoredFile(
            kind=kind,
            sha256=sha,
            storage_key=key,
            size=len(data),
            mime=mime,
            original_name=original_name,
        )

    def check_count(self, count: int) -> None:
        """Refuse a request carrying more files than the shop allows, before reading any."""
        if count > self.limits.max_files:
            raise MediaRejected(
                f"{count} files: at most {self.limits.max_files} in one message",
                reason="too_many",
                limit=self.limits.max_files,
            )

    def store_agent_file(self, data: bytes, *, original_name: str = "") -> StoredFile:
        """A file an agent attaches to a reply, kept by what it is (sniffed from its bytes):
        a photo (checked, re-encoded, metadata stripped) or a PDF (kept as is); anything else
        is refused, naming what is accepted."""
        if not data:
            raise MediaRejected("the file is empty", reason="empty")
        if data.startswith(_PHOTO_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
            return self.store_photo(data, original_name=original_name)
        if data.startswith(_PDF_MAGIC):
            return self.store_file(
                data, kind="document", mime="application/pdf", original_name=original_name
            )
        raise MediaRejected(
            f"{original_name or 'the file'} is not a photo or a PDF ({AGENT_FILE_TYPES})",
            reason="not_allowed",
        )

    # ------------------------------------------------------------ internals

    def _check_bytes(self, kind: str, data: bytes) -> None:
        if not data:
            raise MediaRejected(f"the {kind} is empty", reason="empty")
        self.check_size(kind, len(data))

    def _clean_image(self, data: bytes) -> tuple[bytes, str, int, int, bytes]:
        """(cleaned bytes, format, width, height, thumbnail JPEG)."""
        # Pillow is loaded on the first photo, not at start-up (2 MB a server may never need).
        from PIL import Image, ImageOps, UnidentifiedImageError

        try:
            # A decompression bomb is an attack, not a photo: make Pillow's warning an error.
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as probe:
                    fmt = probe.format or ""
                    width, height = probe.size
                    if fmt not in PHOTO_FORMATS:
                        raise MediaRejected(
                            f"{fmt or 'unknown'} images are not accepted as photos",
                            reason="not_an_image",
                        )
                    if width * height > self.limits.max_pixels:
                        raise MediaRejected(
                            f"the photo is {width}x{height}: too many pixels",
                            reason="too_large",
                            limit=self.limits.max_pixels,
                        )
                    probe.verify()
                # verify() leaves the image unusable; decode it again, fully.
                with Image.open(io.BytesIO(data)) as img:
                    img.load()
                    upright = ImageOps.exif_transpose(img)
                    clean = self._without_metadata(upright)
                    out = io.BytesIO()
                    self._save(clean, fmt, out)
                    thumb = clean.copy()
                    size = self.limits.thumbnail_px
                    thumb.thumbnail((size, size))
                    thumb_out = io.BytesIO()
                    self._flat(thumb).save(thumb_out, "JPEG", quality=80)
        except MediaRejected:
            raise
        except (
            UnidentifiedImageError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
            OSError,
            SyntaxError,
            ValueError,
        ) as exc:
            # Pillow reports broken or truncated images through all of these.
            raise MediaRejected(f"not a readable image: {exc}", reason="not_an_image") from exc
        return out.getvalue(), fmt, clean.width, clean.height, thumb_out.getvalue()

    @staticmethod
    def _without_metadata(img: Image.Image) -> Image.Image:
        """A copy of the pixels with only the colour profile kept (how it looks), nothing
        about where or by what it was taken."""
        clean = img.copy()
        icc = img.info.get("icc_profile")
        clean.info = {"icc_profile": icc} if icc else {}
        return clean

    @staticmethod
    def _flat(img: Image.Image) -> Image.Image:
        return img if img.mode in ("RGB", "L") else img.convert("RGB")

    def _save(self, img: Image.Image, fmt: str, out: io.BytesIO) -> None:
        icc = img.info.get("icc_profile")
        extra: dict[str, Any] = {"icc_profile": icc} if icc else {}
        if fmt == "JPEG":
            self._flat(img).save(out, "JPEG", quality=95, exif=b"", **extra)
        elif fmt == "WEBP":
            img.save(out, "WEBP", quality=95, exif=b"", **extra)
        else:
            img.save(out, "PNG", **extra)

    def _write(self, key: str, data: bytes) -> None:
        """Write atomically (a reader never sees half a file); the same key is the same
        content, so an existing file is left as it is."""
        path = self.path(key)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
