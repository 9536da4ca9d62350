"""Errors raised while opening or walking capture files.

Per-packet problems never raise: they are counted by reason and skipped.  What
raises is a file that cannot be walked at all (wrong magic, a record or block
header whose length cannot be trusted, a link type the caller cannot use), and
the message always names the file and what was found.
"""
from __future__ import annotations

from host.protocols.errors import DecodeError


class CaptureFormatError(DecodeError):
    """The file is not a capture we can walk, or its framing is corrupt."""

    reason = "bad_format"


class UnsupportedLinkType(CaptureFormatError):
    """No packet in the file uses a link type the caller can decode."""

    reason = "unsupported_linktype"
