"""Evidence from Telegram: a message's photo (largest size), video or document downloaded
through getFile and kept in the attachment store, before the update's transaction opens.

The result is plain values (`Media`): handlers decide where each file belongs (the request being
filled in, the open case, kept for later) without touching Telegram objects.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiogram import Bot
from aiogram.types import Message

from bot.draft import EvidenceFile
from tickets.storage import MB, AttachmentStore, MediaLimits, MediaRejected, StoredFile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Media:
    """One file that came with a message: stored, or refused with the reason."""

    message_id: int
    media_group_id: str | None
    kind: str  # photo | video | document
    stored: StoredFile | None = None
    rejected: str | None = None  # too_large | not_an_image | empty
    limit: int | None = None

    def to_evidence(self) -> EvidenceFile:
        """What the conversation's draft keeps until the case exists."""
        assert self.stored is not None
        return EvidenceFile.model_validate(
            {
                **self.stored.to_dict(),
                "message_id": self.message_id,
                "media_group_id": self.media_group_id,
            }
        )


def _pick(message: Message) -> tuple[str, str, int | None, str | None, str] | None:
    """(kind, file_id, size, mime, name) of the message's file, or None."""
    if message.photo:
        # Telegram lists the sizes smallest first: the last one is the original resolution.
        biggest = message.photo[-1]
        return "photo", biggest.file_id, biggest.file_size, "image/jpeg", ""
    if message.video:
        v = message.video
        return "video", v.file_id, v.file_size, v.mime_type or "video/mp4", v.file_name or ""
    if message.document:
        d = message.document
        return "document", d.file_id, d.file_size, d.mime_type, d.file_name or ""
    return None


async def fetch_media(bot: Bot, message: Message, store: AttachmentStore) -> list[Media]:
    """Download and store the message's file (none: an empty list). A file over the limits
    or not a real image comes back refused, with the reason; network errors propagate."""
    picked = _pick(message)
    if picked is None:
        return []
    kind, file_id, size, mime, name = picked
    mid, group = message.message_id, message.media_group_id
    try:
        store.check_size(kind, size)
        buffer = io.BytesIO()
        await bot.download(file_id, destination=buffer)
        data = buffer.getvalue()
        # Decoding and re-encoding a large photo takes a while: off the event loop.
        if kind == "photo":
            stored = await asyncio.to_thread(store.store_photo, data, original_name=name)
        else:
            stored = await asyncio.to_thread(
                store.store_file, data, kind=kind, mime=mime, original_name=name
            )
    except MediaRejected as exc:
        log.info("file refused from message %s: %s", message.message_id, exc.message)
        return [
            Media(
                message_id=mid,
                media_group_id=group,
                kind=kind,
                rejected=exc.reason,
                limit=exc.limit,
            )
        ]
    return [Media(message_id=mid, media_group_id=group, kind=stored.kind, stored=stored)]


def rejection_text(item: Media, t: Callable[..., str], limits: MediaLimits) -> str:
    """Why a file was not kept, in words for whoever sent it (`t`: their language's texts)."""
    if item.rejected == "too_large":
        return t(
            "intake.media_too_large", limit_mb=(item.limit or limits.for_kind(item.kind)) // MB
        )
    return t("intake.media_not_image")
