"""The customer's conversation draft: what the bot keeps between their messages (the request
being filled in, the case of a side step, a rating awaiting its comment) as one typed value.

The FSM storage (bot/fsm_storage.py: memory, Redis, the database) holds it as a dict; only
`load_draft` and `save_draft` see that dict. The stored shape is the one the handlers wrote as
dicts before: a conversation in progress across an upgrade continues, and keys this version
does not know are kept (`extra="allow"`).

`save_draft` writes only the fields changed since the draft was loaded (as `update_data` with
those keys did): a step that asks the next one (which loads and saves the draft itself) leaves
what that step wrote alone.
"""

from __future__ import annotations

from typing import Any

from aiogram.fsm.context import FSMContext
from pydantic import BaseModel, ConfigDict, PrivateAttr


class _Kept(BaseModel):
    """Unknown keys kept (module doc), assignments checked."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)


class EvidenceFile(_Kept):
    """A file the customer sent for a request not yet opened: the stored copy (the fields of
    tickets/storage.py's StoredFile), the Telegram message it came in, and its caption."""

    kind: str  # photo | video | document
    sha256: str
    storage_key: str
    size: int
    mime: str
    original_name: str = ""
    thumbnail_key: str | None = None
    width: int | None = None
    height: int | None = None
    message_id: int | None = None
    media_group_id: str | None = None
    caption: str | None = None

    def to_core(self) -> dict[str, Any]:
        """As the core's services take a kept file (tickets/self_service.py)."""
        return self.model_dump(mode="json", exclude_unset=True)


class OrderLine(_Kept):
    """An order line the items step offers: how many units are free to claim, of how many
    bought (None in conversations begun before it was kept: the free ones)."""

    sku: str
    title: str
    free: int
    bought: int | None = None

    @property
    def most(self) -> int:
        return self.bought if self.bought is not None else self.free


class Draft(_Kept):
    """The conversation's data. Every field has the value a missing key meant."""

    # The intake (bot/routers/customer/intake.py, steps.py).
    recent: list[str] = []  # the order numbers offered as buttons, in order
    order_no: str | None = None
    proof_tries: int = 0
    categories: dict[str, str] | None = None  # by SKU (None: begun before they were kept)
    existing_case: str | None = None  # a case of the order in the way of a new one
    kind: str | None = None
    lines: list[OrderLine] = []
    chosen: dict[str, int] = {}  # units claimed by SKU
    items_auto: bool = False  # the order's one item, chosen for the customer
    reasons: list[str] = []
    reason_notes: list[str] = []
    reason: str | None = None
    description: str | None = None
    evidence: list[EvidenceFile] = []
    album_answered: str | None = None  # the album whose first part was answered
    # Side steps about one case: tracking, a pickup (the slot chosen), my cases.
    case_no: str = ""
    pickup_time: str | None = None
    pickup_label: str = ""
    # A rating awaiting its comment.
    rated: int | None = None
    score: int | None = None

    # A default, not a default_factory: pydantic inspects a factory's signature on every
    # draft made (twice), and `load_draft` replaces the dict anyway.
    _loaded: dict[str, Any] = PrivateAttr(default={})

    # The steps after the order, the kind and the reason read them as given: a draft without
    # one is a step out of order (KeyError, as the dict's lookups raised).
    def the_order_no(self) -> str:
        return _given(self.order_no, "order_no")

    def the_kind(self) -> str:
        return _given(self.kind, "kind")

    def the_reason(self) -> str:
        return _given(self.reason, "reason")

    def the_pickup_time(self) -> str:
        return _given(self.pickup_time, "pickup_time")

    def claimed_skus(self) -> list[str]:
        """The SKUs chosen with at least one unit."""
        return [sku for sku, q in self.chosen.items() if q > 0]

    def photos(self) -> int:
        return sum(1 for f in self.evidence if f.kind == "photo")

    def evidence_for_core(self) -> list[dict[str, Any]]:
        return [f.to_core() for f in self.evidence]

    def titles(self) -> dict[str, str]:
        return {line.sku: line.title for line in self.lines}


def _given(value: str | None, name: str) -> str:
    if value is None:
        raise KeyError(name)
    return value


def dump_draft(draft: Draft) -> dict[str, Any]:
    """The draft as the FSM storage keeps it: the keys that were set, as JSON values."""
    return draft.model_dump(mode="json", exclude_unset=True)


async def load_draft(state: FSMContext) -> Draft:
    """The conversation's draft, from its stored dict."""
    stored = await state.get_data()
    draft = Draft.model_validate(stored)
    # What `save_draft` compares with: the stored dict itself (a dump of the draft just read
    # gives the same values, at a dump's cost on every update).
    draft._loaded = dict(stored)
    return draft


async def save_draft(state: FSMContext, draft: Draft) -> None:
    """Write the fields changed since `load_draft` (module doc)."""
    now = dump_draft(draft)
    changed = {k: v for k, v in now.items() if k not in draft._loaded or draft._loaded[k] != v}
    if changed:
        await state.update_data(changed)
    draft._loaded = now
