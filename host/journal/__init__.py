"""Crash-safe append-only journal: what the appliance acknowledged survives a crash."""
from host.journal.journal import (
    Journal,
    JournalCorrupt,
    JournalError,
    Record,
    Recovery,
)

__all__ = ["Journal", "JournalCorrupt", "JournalError", "Record", "Recovery"]
