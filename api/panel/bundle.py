"""The evidence bundle for a platform dispute (平台介入: 24 h to upload): one ZIP with the case's
timeline as a readable HTML page (messages, events, the order, the refund breakdown) and every
photo and file the customer or the shop attached, with their SHA-256 so the platform can check
nothing was altered. Behind the panel's log-in like the files themselves.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import SessionDep
from api.panel.auth import CurrentPanelAgent
from api.panel.pages import render, render_text
from api.panel.workspace import case_context
from tickets.exceptions import NotFound

router = APIRouter()

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def bundle_name(attachment_id: int, original: str, mime: str) -> str:
    """The file's name inside the ZIP: its id first (unique), then a safe form of its name."""
    stem = _UNSAFE.sub("_", original).strip("._")[:80]
    if not stem:
        stem = "evidence" + (
            ".jpg" if mime == "image/jpeg" else ".png" if mime == "image/png" else ""
        )
    return f"files/{attachment_id}-{stem}"


@router.get("/cases/{number}/bundle.zip")
def bundle(
    number: str, request: Request, session: SessionDep, agent: CurrentPanelAgent
) -> Response:
    """The ZIP: timeline.html and files/ (a file missing from storage is named in the page)."""
    try:
        context = case_context(request, session, agent, number)
    except NotFound:
        return render(request, "not_found.html", {"number": number}, status_code=404)
    media = Path(request.app.state.settings.media_dir).resolve()
    rows = {a.id: a for a in context["ticket"].attachments}
    files: dict[int, str] = {}
    missing: list[int] = []
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for attachment_id, row in sorted(rows.items()):
            path = (media / row.storage_key).resolve()
            if not path.is_relative_to(media) or not path.is_file():
                missing.append(attachment_id)
                continue
            name = bundle_name(attachment_id, row.original_name, row.mime)
            archive.write(path, name)
            files[attachment_id] = name
        page = render_text(
            request,
            "bundle.html",
            {**context, "files": files, "missing": missing, "exported_by": agent},
        )
        archive.writestr("timeline.html", page)
    filename = f"{context['t'].number}-evidence.zip"
    return Response(
        out.getvalue(),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
