"""The flags admin: flags, their history and segments, change requests."""

from apps.flags.admin import changes, flags, history

__all__ = ["changes", "flags", "history"]
