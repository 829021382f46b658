"""Open a case by hand: a request that came by phone, e-mail or a platform's message centre.

The form posts to `tickets.cases.opening.open_case` with the agent as the actor, so the same
eligibility, duplicate, risk and routing rules apply as for the bot. A refusal shows each
problem next to its field (the core's errors carry `loc`: `order_no`, `items.0.quantity`...)
and keeps what the agent typed. Only leads and admins may tick "exception to policy"
(TicketCreate.override_policy); the core records the exception on the case.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from api.deps import ContextDep, SessionDep
from api.panel.auth import CurrentPanelAgent
from api.panel.i18n import N_
from api.panel.labels import KIND, PRIORITY, REASON
from api.panel.pages import render
from api.panel.workspace import FormFields
from tickets.cases.opening import open_case
from tickets.context import Actor
from tickets.exceptions import (
    DomainError,
    DuplicateCase,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from tickets.schemas import TicketCreate, whole_number

router = APIRouter()

# Channels a request opened by hand comes from (the bot and the API open their own).
HAND_CHANNELS = ("phone", "email", "platform")
# Item rows on the form; a request naming more SKUs is rare enough to open as two.
ITEM_ROWS = 5
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


def request_data(form: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The TicketCreate fields from the form, and the problems found before the core sees it."""
    errors: list[dict[str, Any]] = []
    items = []
    for i in range(ITEM_ROWS):
        sku = form.get(f"sku_{i}", "").strip()
        qty = form.get(f"qty_{i}", "").strip()
        if not sku and not qty:
            continue
        if not sku:
            errors.append({"loc": f"items.{i}.sku", "msg": N_("which SKU?")})
            continue
        quantity = whole_number(qty)
        if quantity is None or quantity < 1:
            errors.append({"loc": f"items.{i}.quantity", "msg": N_("a whole number, 1 or more")})
            continue
        # Index by row, so an error the core names (items.N) lands on the row typed.
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
    }
    if form.get("language") in CUSTOMER_LANGUAGES:
        data["language"] = form["language"]
    name, phone = form.get("customer_name", "").strip(), form.get("customer_phone", "").strip()
    if data["order_no"] is None and (name or phone):
        data["customer"] = {"name": name, "phone": phone or None}
    if data["channel"] not in HAND_CHANNELS:
        errors.append({"loc": "channel", "msg": N_("phone, e-mail or platform")})
    # The core numbers items as sent; map them back to the rows they were typed on.
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


def _form_page(
    request: Request,
    form: dict[str, str],
    *,
    errors: list[dict[str, Any]] | None = None,
    message: str | None = None,
    duplicate: str | None = None,
    status_code: int = 200,
) -> Response:
    policy = request.app.state.policy
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
            "rows": range(ITEM_ROWS),
            "customer_languages": CUSTOMER_LANGUAGES,
            "groups": policy.groups,
        },
        status_code=status_code,
    )


@router.get("/cases/new")
def new_case_form(request: Request, agent: CurrentPanelAgent) -> Response:
    """The form for a request that came by phone, e-mail or a platform."""
    defaults = {"channel": "phone", "priority": "normal", "qty_0": "1"}
    order_no = request.query_params.get("order_no", "")
    if order_no:
        defaults["order_no"] = order_no
    return _form_page(request, defaults)


@router.post("/cases/new")
def new_case(
    request: Request,
    session: SessionDep,
    agent: CurrentPanelAgent,
    ctx: ContextDep,
    form: FormFields,
) -> Response:
    """Open the case as the logged-in agent, or show the form again with the problems."""
    data, errors = request_data(form)
    rows: list[int] = data.pop("_rows")
    try:
        body = TicketCreate.model_validate(data)
    except ValidationError as exc:
        errors += [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        return _form_page(request, form, errors=_remap_items(errors, rows), status_code=422)
    if errors:
        return _form_page(request, form, errors=errors, status_code=422)
    try:
        # A savepoint: a refusal after the core wrote something (a new customer) leaves nothing.
        with session.begin_nested():
            ticket = open_case(session=session, request=body, actor=Actor("agent", agent), ctx=ctx)
            number = ticket.number
    except PermissionDenied as exc:
        # The core's rule (tickets/workflow.py PERMISSIONS), the same as the API's.
        errors = [{"loc": "override_policy", "msg": "only a lead may make an exception"}]
        return _form_page(request, form, errors=errors, message=exc.message, status_code=403)
    except DuplicateCase as exc:
        return _form_page(
            request, form, message=exc.message, duplicate=exc.existing, status_code=409
        )
    except NotFound as exc:
        where = "order_no" if body.order_no else "kind"
        return _form_page(
            request, form, errors=[{"loc": where, "msg": exc.message}], status_code=422
        )
    except InvalidInput as exc:
        errors = _remap_items(exc.errors, rows) or [{"loc": "form", "msg": exc.message}]
        return _form_page(request, form, errors=errors, message=exc.message, status_code=422)
    except DomainError as exc:
        return _form_page(request, form, message=exc.message, status_code=422)
    return RedirectResponse(
        f"/panel/cases/{number}?done=opened", status_code=status.HTTP_303_SEE_OTHER
    )
