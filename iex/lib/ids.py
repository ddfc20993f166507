"""Public ids: objects inside an integration are addressed by UUID, never by integer primary key."""

import uuid


def is_uuid(value: str) -> bool:
    """Whether `value` reads as a UUID: a filter or a reference given by someone else is checked before a query."""
    try:
        uuid.UUID(value)
    except (TypeError, ValueError):
        return False
    return True
