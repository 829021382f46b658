"""Domain errors. Each transport translates them once (an HTTP status in api/, a reply in bot/)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base: a message a person can act on, and a machine-readable code."""

    code = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "not_found"


class InvalidInput(DomainError):
    """Bad input; `errors` lists each problem as {loc, msg} (a field path or a file line)."""

    code = "invalid"

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, errors=errors or [])
        self.errors = errors or []


class Conflict(DomainError):
    """Someone else changed the thing first: reload and try again."""

    code = "conflict"


class ActionNotAllowed(Conflict):
    """The case's status (or kind) does not allow this action now."""

    code = "action_not_allowed"

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message, allowed_actions=allowed)
        self.allowed = allowed


class DuplicateCase(Conflict):
    code = "duplicate"

    def __init__(self, message: str, existing: str) -> None:
        super().__init__(message, existing=existing)
        self.existing = existing


class PermissionDenied(DomainError):
    code = "forbidden"


class SecondApproverRequired(PermissionDenied):
    """Maker-checker: a large refund needs a person who had no hand in it (`did`: what this
    one did: proposed, opened, order, system), above `threshold` in `currency`."""

    code = "second_approver_required"


class ConfirmationRequired(InvalidInput):
    """The action is possible, but the case asks a person to confirm it deliberately (`needs`:
    the holds to confirm, tickets.cases.holds), not with a bare click."""

    code = "confirmation_required"

    def __init__(self, message: str, needs: list[str]) -> None:
        super().__init__(message, [{"loc": "confirm", "msg": f"confirm {n}"} for n in needs])
        self.details["needs"] = needs
        self.needs = needs


class HeldForPerson(Conflict):
    """A bulk action leaves this case out: the policy holds it for one person's look
    (`holds`: its hold codes, tickets.cases.holds)."""

    code = "held_for_person"
