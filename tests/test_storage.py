"""The attachment store: real images only, location stripped, content-addressed, thumbnails,
size limits; videos and documents kept as they are."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.fakes.telegram import jpeg
from tickets.exceptions import InvalidInput
from tickets.settings import Settings
from tickets.storage import AttachmentStore, MediaLimits, MediaRejected, StoredFile, limits_from


@pytest.fixture
def store(tmp_path: Path) -> AttachmentStore:
    return AttachmentStore(tmp_path / "media")


def test_a_photo_is_kept_without_its_location_with_a_thumbnail(store: AttachmentStore) -> None:
    original = jpeg("red", (800, 600))
    with Image.open(io.BytesIO(original)) as img:
        assert img.getexif().get_ifd(0x8825), "the fixture carries a GPS position"
    stored = store.store_photo(original, original_name="IMG_1.jpg")
    assert (stored.kind, stored.mime, stored.width, stored.height) == (
        "photo",
        "image/jpeg",
        800,
        600,
    )
    path = store.path(stored.storage_key)
    assert stored.storage_key == f"photo/{stored.sha256[:2]}/{stored.sha256}.jpg"
    assert path.stat().st_size == stored.size
    with Image.open(path) as kept:
        assert not kept.getexif()
        assert "exif" not in kept.info and "xmp" not in kept.info
    assert stored.thumbnail_key is not None
    with Image.open(store.path(stored.thumbnail_key)) as thumb:
        assert max(thumb.size) == 320


def test_the_same_photo_twice_is_stored_once(store: AttachmentStore) -> None:
    data = jpeg("blue")
    first, second = store.store_photo(data), store.store_photo(data)
    assert first == second
    assert len(list((store.root / "photo").rglob("*.jpg"))) == 1


def test_an_upright_photo_stays_upright(store: AttachmentStore) -> None:
    img = Image.new("RGB", (40, 20), "green")
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    stored = store.store_photo(out.getvalue())
    assert (stored.width, stored.height) == (20, 40)


def test_png_and_webp_keep_their_format(store: AttachmentStore) -> None:
    for fmt, mime in (("PNG", "image/png"), ("WEBP", "image/webp")):
        out = io.BytesIO()
        Image.new("RGBA", (10, 10), (1, 2, 3, 128)).save(out, fmt)
        assert store.store_photo(out.getvalue()).mime == mime


@pytest.mark.parametrize(
    "data",
    [b"", b"GIF89a not an image at all", jpeg("red")[:200], b"%PDF-1.4 pretending"],
)
def test_what_is_not_a_real_image_is_refused(store: AttachmentStore, data: bytes) -> None:
    with pytest.raises(MediaRejected) as caught:
        store.store_photo(data)
    assert caught.value.reason in ("not_an_image", "empty")
    assert isinstance(caught.value, InvalidInput)
    assert not (store.root / "photo").exists()


def test_a_decompression_bomb_is_refused(tmp_path: Path) -> None:
    small = AttachmentStore(tmp_path, MediaLimits(max_pixels=100))
    with pytest.raises(MediaRejected) as caught:
        small.store_photo(jpeg("red", (20, 20)))
    assert caught.value.reason == "too_large"


def test_size_limits_per_kind(tmp_path: Path) -> None:
    limits = MediaLimits(photo_bytes=1000, video_bytes=10, document_bytes=20)
    store = AttachmentStore(tmp_path, limits)
    with pytest.raises(MediaRejected) as caught:
        store.store_photo(jpeg("red", (400, 400)))
    assert (caught.value.reason, caught.value.limit) == ("too_large", 1000)
    with pytest.raises(MediaRejected):
        store.store_file(b"x" * 11, kind="video", mime="video/mp4")
    store.check_size("document", 20)
    with pytest.raises(MediaRejected):
        store.check_size("document", 21)


def test_videos_and_documents_are_kept_byte_for_byte(store: AttachmentStore) -> None:
    video = store.store_file(b"\x00\x00\x00\x18ftypmp42 fake", kind="video", mime="video/mp4")
    assert video.storage_key.endswith(".mp4") and video.kind == "video"
    assert store.path(video.storage_key).read_bytes() == b"\x00\x00\x00\x18ftypmp42 fake"
    doc = store.store_file(b"%PDF-1.4", kind="document", mime="application/pdf", original_name="r")
    assert (doc.kind, doc.mime, doc.original_name) == ("document", "application/pdf", "r")


def test_an_image_sent_as_a_document_is_cleaned_like_a_photo(store: AttachmentStore) -> None:
    stored = store.store_file(jpeg("red"), kind="document", mime="IMAGE/JPEG", original_name="a")
    assert stored.kind == "photo"
    with Image.open(store.path(stored.storage_key)) as kept:
        assert not kept.getexif()


def test_keys_cannot_leave_the_store(store: AttachmentStore) -> None:
    with pytest.raises(InvalidInput):
        store.path("../../etc/passwd")


def test_stored_files_round_trip_as_plain_json(store: AttachmentStore) -> None:
    stored = store.store_photo(jpeg("red"))
    assert StoredFile.from_dict({**stored.to_dict(), "message_id": 5}) == stored


def test_limits_come_from_the_settings(settings: Settings) -> None:
    assert limits_from(settings) == MediaLimits()  # the defaults agree

    shop = settings.model_copy(update={"media_max_photo_bytes": 5, "media_max_files": 3})
    limits = limits_from(shop)
    assert (limits.photo_bytes, limits.max_files, limits.video_bytes) == (
        5,
        3,
        MediaLimits().video_bytes,
    )
