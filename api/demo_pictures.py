"""The demo shop's photos: pictures drawn with Pillow (no fonts, no stock images) of a demo
case's item, for `aftersales demo` (tickets/demo.py takes the drawing as `draw_photo`; the CLI
hands it this module's `demo_photo`). Drawing belongs to the host, not the core: the core keeps
the demo's data and its loader, and never imports an imaging library for it.
"""

from __future__ import annotations

import hashlib
import io

# A demo case's evidence is a picture drawn here, not a stock photo: the product's shape in its
# colour on a table top, the claimed defect ringed in red, the shop's barcode tag (no text, so no
# font is needed). Each picture follows from its case, its SKU and its place among the case's
# photos, so every load draws the same bytes and the store keeps them once.
PHOTO_SIZE = (480, 360)

PRODUCT_COLOURS: dict[str, tuple[int, int, int]] = {
    "DOWN-JKT-M": (128, 160, 190),
    "TEE-WHT-L": (246, 246, 240),
    "JEANS-32": (62, 88, 132),
    "RUN-42": (96, 104, 118),
    "BOOT-38": (120, 78, 48),
    "EARBUD-PRO": (236, 236, 236),
    "PWRBANK-20K": (52, 56, 64),
    "KB-MECH": (70, 74, 82),
    "TEA-LJ-250": (108, 142, 84),
    "NUTS-MIX": (196, 160, 110),
    "COFFEE-500": (112, 74, 52),
    "SERUM-30": (196, 132, 60),
    "LIPSTICK-03": (170, 40, 48),
    "MUG-SET": (90, 150, 170),
    "BEDSHEET": (232, 220, 196),
    "PILLOW-LTX": (240, 238, 228),
    "DUVET-PRE": (244, 244, 246),
    "BOOK-3BODY": (34, 48, 88),
    "BOOK-PY": (72, 120, 110),
    "SUIT-MTO": (38, 46, 72),
    "RING-ENG": (190, 192, 198),
}

# Outlines in a unit square (x, y from the top left), by the product's shape.
_Pt = tuple[float, float]
# fmt: off
_TOP: tuple[_Pt, ...] = ((0.32, 0.02), (0.68, 0.02), (1.0, 0.22), (0.88, 0.42), (0.78, 0.36),
                         (0.78, 0.98), (0.22, 0.98), (0.22, 0.36), (0.12, 0.42), (0.0, 0.22))
_TROUSERS: tuple[_Pt, ...] = ((0.24, 0.02), (0.76, 0.02), (0.82, 0.98), (0.56, 0.98),
                              (0.5, 0.36), (0.44, 0.98), (0.18, 0.98))
_SHOE: tuple[_Pt, ...] = ((0.06, 0.3), (0.42, 0.26), (0.58, 0.52), (0.94, 0.62), (0.97, 0.84),
                          (0.06, 0.84))
# fmt: on


def demo_photo(seed: str, sku: str, category: str, shot: int = 0, defect: bool = True) -> bytes:
    """One demo photo as PNG bytes: shot 0 shows the whole product, later shots come closer
    to the defect (ringed in red), or without one to the tag (the item is unworn)."""
    from PIL import Image, ImageDraw

    h = hashlib.sha256(f"{seed}|{sku}|{shot}".encode()).digest()
    width, height = PHOTO_SIZE
    table = (222 + h[0] % 24, 214 + h[1] % 24, 200 + h[2] % 24)
    image = Image.new("RGB", PHOTO_SIZE, table)
    draw = ImageDraw.Draw(image)
    colour = PRODUCT_COLOURS.get(sku, (150, 150, 160))
    dark = tuple(max(0, c - 60) for c in colour)
    zoom = 1.0 + 0.6 * min(shot, 2)
    # Where the defect is on the product (unit square), and the product's box on the picture.
    fx, fy = (0.4 + (h[3] % 25) / 100, 0.35 + (h[4] % 25) / 100) if defect else (0.68, 0.73)
    bw, bh = 300 * zoom, 250 * zoom
    x0 = width / 2 - bw / 2 + (h[5] % 31 - 15)
    y0 = height / 2 - bh / 2 + (h[6] % 21 - 10)
    if shot:
        # A close-up: the defect near the middle of the picture.
        x0, y0 = width / 2 - fx * bw, height / 2 - fy * bh

    def pt(x: float, y: float) -> tuple[float, float]:
        return (x0 + x * bw, y0 + y * bh)

    def box(a: float, b: float, c: float, d: float) -> tuple[float, float, float, float]:
        return (*pt(a, b), *pt(c, d))

    shade = tuple(max(0, c - 28) for c in table)
    draw.ellipse(box(0.08, 0.9, 0.92, 1.04), fill=shade)
    r = int(18 * zoom)
    if sku.startswith("RING"):
        draw.ellipse(box(0.3, 0.2, 0.7, 0.8), outline=colour, width=int(22 * zoom))
    elif category in ("apparel", "made_to_order"):
        draw.polygon(
            [pt(*p) for p in (_TROUSERS if sku.startswith("JEANS") else _TOP)],
            fill=colour,
            outline=dark,
        )
        if not sku.startswith("JEANS"):
            draw.chord(box(0.4, -0.06, 0.6, 0.1), 0, 180, fill=dark)
    elif category == "shoes":
        draw.polygon([pt(*p) for p in _SHOE], fill=colour, outline=dark)
        draw.rectangle(box(0.04, 0.84, 0.99, 0.94), fill=dark)
    elif category == "electronics":
        draw.rounded_rectangle(box(0.04, 0.22, 0.96, 0.82), radius=r, fill=colour, outline=dark)
        for i in range(6):
            for j in range(3):
                a, b = 0.1 + i * 0.14, 0.32 + j * 0.15
                draw.rounded_rectangle(box(a, b, a + 0.1, b + 0.1), radius=r // 4, fill=dark)
    elif category in ("food", "cosmetics"):
        draw.rounded_rectangle(box(0.28, 0.04, 0.72, 0.96), radius=r, fill=colour, outline=dark)
        draw.rectangle(box(0.28, 0.04, 0.72, 0.16), fill=dark)
        draw.rounded_rectangle(box(0.36, 0.3, 0.64, 0.56), radius=r // 2, fill=table)
    elif category == "books":
        draw.rectangle(box(0.2, 0.02, 0.8, 0.98), fill=colour, outline=dark)
        draw.rectangle(box(0.2, 0.02, 0.27, 0.98), fill=dark)
        draw.rectangle(box(0.36, 0.16, 0.72, 0.3), fill=(240, 236, 224))
    elif sku.startswith("MUG"):
        draw.ellipse(box(0.6, 0.3, 0.86, 0.7), outline=colour, width=int(16 * zoom))
        draw.rounded_rectangle(box(0.2, 0.14, 0.7, 0.94), radius=r, fill=colour, outline=dark)
    else:  # bedding and the rest: a folded stack
        for i in range(3):
            y = 0.2 + i * 0.24
            draw.rounded_rectangle(
                box(0.06, y, 0.94, y + 0.26), radius=r, fill=colour, outline=dark, width=2
            )
    # The barcode tag, then the defect (a crack, a tear, a stain: a dark zigzag) ringed in red.
    tag = box(0.6, 0.66, 0.76, 0.8)
    draw.rectangle(tag, fill=(252, 252, 250), outline=(120, 120, 120))
    step = (tag[2] - tag[0]) / 24
    for i in range(2, 22):
        if h[(i % 24) + 7] % 3:
            x = tag[0] + i * step
            draw.line((x, tag[1] + 4, x, tag[3] - 4), fill=(30, 30, 30), width=1)
    if not defect:
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
        return out.getvalue()
    cx, cy = pt(fx, fy)
    s = 9 * zoom
    zigzag = [
        (cx - 3 * s + i * 1.5 * s, cy + (s if i % 2 else -s) * (0.4 + (h[i] % 5) / 8))
        for i in range(5)
    ]
    light = sum(colour) > 330
    draw.line(zigzag, fill=(36, 30, 28) if light else (240, 236, 226), width=max(3, int(3 * zoom)))
    ring = 3.8 * s
    draw.ellipse(
        (cx - ring, cy - ring * 0.8, cx + ring, cy + ring * 0.8),
        outline=(214, 36, 36),
        width=max(4, int(4 * zoom)),
    )
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
