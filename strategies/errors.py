"""Plan errors: one line naming file, line and field (see inventory.errors)."""
from __future__ import annotations

from inventory.errors import InputError


class PlanError(InputError):
    """Bad rollout plan file."""
