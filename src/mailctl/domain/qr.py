"""QR codes of short texts (an ``otpauth://`` URI) as SVG, PNG and terminal text."""

from __future__ import annotations

import base64
import io

import segno

# Error correction M (15 %): a phone's camera reads it off a screen; the code stays small.
_ERROR = "m"


def _code(text: str) -> segno.QRCode:
    return segno.make_qr(text, error=_ERROR)


def svg(text: str) -> str:
    """An SVG document (without the XML declaration), dark modules on white."""
    out = io.BytesIO()
    _code(text).save(out, kind="svg", xmldecl=False, scale=4, dark="#000", light="#fff")
    return out.getvalue().decode("utf-8")


def png_base64(text: str) -> str:
    """A PNG image, base64-encoded, for a ``data:image/png;base64,`` URL."""
    out = io.BytesIO()
    _code(text).save(out, kind="png", scale=5, dark="#000", light="#fff")
    return base64.b64encode(out.getvalue()).decode("ascii")


def terminal(text: str) -> str:
    """The code drawn with Unicode half blocks, two rows of modules to a line of text."""
    out = io.StringIO()
    _code(text).terminal(out=out, compact=True)
    return out.getvalue()
