"""Which compressed transfer syntaxes this installation can decode."""

from __future__ import annotations

from pydicom.pixels import get_decoder
from pydicom.uid import UID


def decoder_problem(transfer_syntax_uid: str) -> str | None:
    """Why pixels in this transfer syntax cannot be decoded here, or None when they can."""
    if not transfer_syntax_uid:
        return None
    uid = UID(transfer_syntax_uid)
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        return f"transfer syntax {uid.name} ({uid}) is not supported"
    if not decoder.is_available:
        return f"transfer syntax {uid.name} ({uid}) needs a decoder plugin that is not installed"
    return None
