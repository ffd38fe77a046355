"""Who may send: checked from the headers alone, before any of the body is read."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping

SIGNATURE = re.compile(r"[0-9a-fA-F]{40}")
NO_CREDENTIALS = "missing or wrong credentials: send X-Signature or HTTP Basic with the shared secret"


def header_problem(headers: Mapping[str, str], secret: str) -> str | None:
    """Why these headers cannot be let in, or None.

    HTTP Basic is decided here, with the secret as user or password. Segment's X-Signature (HMAC-SHA1 of the
    body) can only be checked against the body, so here it must merely look like one; `signature_matches`
    then checks it. Every malformed header is a refusal with a reason, never an error.
    """
    signature = headers.get("x-signature")
    if signature is not None:
        return None if SIGNATURE.fullmatch(signature) else "X-Signature must be 40 hexadecimal digits"
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return NO_CREDENTIALS
    try:
        # Starlette decodes header values as Latin-1: encoding them back gives the bytes as sent.
        user, _, password = base64.b64decode(credentials.strip().encode("latin-1"), validate=True).partition(b":")
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return "the Authorization header is not valid HTTP Basic"
    expected = secret.encode()
    if hmac.compare_digest(user, expected) or hmac.compare_digest(password, expected):
        return None
    return NO_CREDENTIALS


def signature_matches(headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    """Whether a request without X-Signature, or with one matching the body, may go on."""
    signature = headers.get("x-signature")
    if signature is None:
        return True
    expected = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return hmac.compare_digest(signature.lower().encode(), expected.encode())
