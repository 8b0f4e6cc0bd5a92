"""QR codes as SVG (segno: pure Python, no image library), for the wallet page's payment
requests. A pure function of the text."""

from __future__ import annotations

import io

import segno

MAX_TEXT = 512  # characters; a payment request is about 60


def qr_svg(text: str) -> bytes:
    """An SVG image of a QR code of `text` (error correction M, the standard 4-module border)."""
    code = segno.make_qr(text, error="m", boost_error=False)
    out = io.BytesIO()
    code.save(out, kind="svg", scale=8, border=4, dark="#000", light="#fff", xmldecl=False)
    return out.getvalue()
