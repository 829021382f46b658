"""Open a case by hand: a request that came by phone, e-mail or a platform's message centre.

The form posts to `tickets.cases.opening.open_case` with the agent as the actor, so the same
eligibility, duplicate, risk and routing rules apply as for the bot. A refusal shows each
problem next to its field (the core's errors carry `loc`: `order_no`, `items.0.quantity`...)
and keeps what the agent typed. Only leads and admins may tick "exception to policy"
(TicketCreate.override_policy); the core records the exception on the case.

No SKU is typed: the agent looks the order up (as they type its number, or with "Look up"
without JavaScript) and ticks its lines with quantities. The case starts as the agent's own
(`take`, unticked to leave it to the queue), with the files they attach (photos, PDFs: the
same checks as a reply's).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.deps import ContextDep, SessionDep, StoreDep
from api.panel.auth import CurrentPanelAgent
from api.panel.i18n import N_
from api.panel.labels import KIND, PRIORITY, REASON
from api.panel.pages import render
from api.panel.workspace import FormFields, FormUploads
from tickets.cases.conversation import store_reply_files
from tickets.cases.opening import open_case
from tickets.context import Actor
from tickets.exceptions import (
    DomainError,
    DuplicateCase,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from tickets.models import Order
from tickets.orders.store import get_order
from tickets.schemas import TicketCreate, whole_number

router = APIRouter()

# Channels a request opened by hand come from (the bot and the API open their own).
HAND_CHANNELS = ("phone", "email", "platform")
CUSTOMER_LANGUAGES = ("zh-CN", "en")


def field_of(loc: str) -> str:
    """The form field a core error's `loc` points at: items.2.sku -> sku_2."""
    parts = loc.split(".")
    if parts[0] == "items" and len(parts) >= 3 and parts[1].isdigit():
        return f"{'qty' if parts[2] == 'quantity' else 'sku'}_{parts[1]}"
    if parts[0] == "customer" and len(parts) >= 2:
        return f"customer_{parts[1]}"
    return parts[0]


def _errors_by_field(errors: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in errors:
        out.setdefault(field_of(str(e.get("loc", ""))), []).append(str(e.get("msg", "")))
    return out


def request_data(
    form: dict[str, str], most_items: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The TicketCreate fields from the form, and the problems found before the core sees it.
    Items are the order's lines the agent ticked (`sku_N`, the line's SKU, with `qty_N`): an
    unticked line is no item, whatever its quantity says, so a complaint without items (or
    without an order) never fails on a pre-filled quantity. At most `most_items` rows read."""
    errors: list[dict[str, Any]] = []
    items = []
    rows = sorted(int(key[4:]) for key in form if key.startswith("sku_") and key[4:].isdigit())[
        :most_items
    ]
    for i in rows:
        sku = form.get(f"sku_{i}", "").strip()
        if not sku:
            continue
        quantity = whole_number(form.get(f"qty_{i}", "").strip())
        if quantity is None or quantity < 1:
            errors.append({"loc": f"items.{i}.quantity", "msg": N_("a whole number, 1 or more")})
            continue
        # Index by row, so an error the core names (items.N) lands on the row ticked.
        items.append((i, {"sku": sku, "quantity": quantity}))
    data: dict[str, Any] = {
        "kind": form.get("kind", ""),
        "reason": form.get("reason", ""),
        "order_no": form.get("order_no", "").strip() or None,
        "items": [item for _i, item in items],
        "description": form.get("description", ""),
        "channel": form.get("channel", ""),
        "priority": form.get("priority", "") or "normal",
        "override_policy": form.get("override_policy") == "1",
        "take": form.get("take") == "1",
    }
    if form.get("language") in CUSTOMER_LANGUAGES:
        data["language"] = form["language"]
    name, phone = form.get("customer_name", "").strip(), form.get("customer_phone", "").strip()
    if data["order_no"] is None and (name or phone):
        data["customer"] = {"name": name, "phone": phone or None}
    if data["channel"] not in HAND_CHANNELS:
        errors.append({"loc": "channel", "msg": N_("phone, e-mail or platform")})
    # The core numbers items as sent; map them back to the rows they were ticked on.
    data["_rows"] = [i for i, _item in items]
    return data, errors


def _remap_items(errors: list[dict[str, Any]], rows: list[int]) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        loc = str(e.get("loc", ""))
        parts = loc.split(".")
        if (
            parts[0] == "items"
            and len(parts) >= 2
            and parts[1].isdigit()
            and int(parts[1]) < len(rows)
        ):
            parts[1] = str(rows[int(parts[1])])
            e = {**e, "loc": ".".join(parts)}
        out.append(e)
    return out


def order_lines(session: Session, order_no: str) -> tuple[Order | None, str | None]:
    """The order the agent looked up, with its lines to tick (None and why when there is
    none: the number as typed, in any case, as `get_order` finds it)."""
    if not order_no.strip():
        return None, None
    try:
        return get_order(session=session, order_no=order_no.strip()), None
    except NotFound as exc:
        return None, exc.message


def _form_page(
    request: Request,
    session: Session,
    form: dict[str, str],
    *,
    errors: list[dict[str, Any]] | None = None,
    message: str | None = None,
    duplicate: str | None = None,
    status_code: int = 200,
) -> Response:
    policy = request.app.state.policy
    order, missing = order_lines(session, form.get("order_no", ""))
    return render(
        request,
        "case_new.html",
        {
            "values": form,
            "field_errors": _errors_by_field(errors or []),
            "message": message,
            "duplicate": duplicate,
            "kinds": KIND,
            "reasons": REASON,
            "priorities": PRIORITY,
            "channels": HAND_CHANNELS,
            "order": order,
            "order_missing": missing,
            "customer_languages": CUSTOMER_LANGUAGES,
            "groups": policy.groups,
            "max_files": request.app.state.settings.media_max_files,
        },
        status_code=status_code,
    )


@router.get("/cases/new")
def new_case_form(request: Request, session: SessionDep, agent: CurrentPanelAgent) -> Response:
    """The form for a request that came by phone, e-mail or a platform; with `order_no`, the
    order's lines to tick (the "Look up" button, without JavaScript)."""
    # The case is the agent's own by default: a phone call's caller talks to them.
    defaults = {"channel": "phone", "priority": "normal", "take": "1"}
    if request.query_params.get("lookup") or request.query_params.get("order_no"):
        # What the agent typed before looking the order up is kept.
        defaults = {**dict(request.query_params), "take": request.query_params.get("take", "")}
    return _form_page(request, session, defaults)


@router.get("/cases/new/items")
def new_case_items(
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    order_no: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The looked-up order's lines to tick (htmx fragment, as the order number is typed)."""
    order, missing = order_lines(session, order_no)
    return render(
        request,
        "_order_items.html",
        {"order": order, "order_missing": missing, "values": {}, "field_errors": {}},
    )


@router.post("/cases/new")
def new_case(
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    form: FormFields,
    uploads: FormUploads,
    store: StoreDep,
) -> Response:
    """Open the case as the logged-in agent, with the files attached (the core's checks), or
    show the form again with the problems."""
    data, errors = request_data(form, ctx.limits.items_per_request)
    rows: list[int] = data.pop("_rows")
    try:
        body = TicketCreate.model_validate(data)
    except ValidationError as exc:
        errors += [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        return _form_page(
            request, session, form, errors=_remap_items(errors, rows), status_code=422
        )
    if errors:
        return _form_page(request, session, form, errors=errors, status_code=422)
    try:
        # A savepoint: a refusal after the core wrote something (a new customer) leaves nothing.
        with session.begin_nested():
            files = store_reply_files(store=store, uploads=uploads, ctx=ctx)
            ticket = open_case(
                session=session,
                request=body,
                actor=Actor("agent", agent),
                ctx=ctx,
                attachments=files,
            )
            number = ticket.number
    except PermissionDenied as exc:
        # The core's rule (tickets/workflow.py PERMISSIONS), the same as the API's.
        errors = [{"loc": "override_policy", "msg": "only a lead may make an exception"}]
        return _form_page(
            request, session, form, errors=errors, message=exc.message, status_code=403
        )
    except DuplicateCase as exc:
        return _form_page(
            request, session, form, message=exc.message, duplicate=exc.existing, status_code=409
        )
    except NotFound as exc:
        where = "order_no" if body.order_no else "kind"
        return _form_page(
            request, session, form, errors=[{"loc": where, "msg": exc.message}], status_code=422
        )
    except InvalidInput as exc:
        errors = _remap_items(exc.errors, rows) or [{"loc": "form", "msg": exc.message}]
        return _form_page(
            request, session, form, errors=errors, message=exc.message, status_code=422
        )
    except DomainError as exc:
        return _form_page(request, session, form, message=exc.message, status_code=422)
    return RedirectResponse(
        f"/panel/cases/{number}?done=opened", status_code=status.HTTP_303_SEE_OTHER
    )
