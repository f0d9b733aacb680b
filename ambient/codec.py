"""Payload encryption: workflow inputs, results and activity arguments leave the worker
encrypted, so secrets never sit in Temporal's history in clear text.

AES-256-GCM per payload; the key id travels in the payload metadata so keys can rotate
(new payloads use the current key, old ones decrypt with the key they name). Payloads
without our encoding pass through untouched, so histories from before encryption stay
readable. Search attributes are never encoded: keep secrets out of them.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class CodecKeyError(Exception):
    """A payload names a key this process does not have, or a key is malformed."""


def parse_key(value: str) -> bytes:
    """A 32-byte key from its URL-safe or standard base64 text."""
    try:
        key = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError as exc:
        raise CodecKeyError("payload key is not base64") from exc
    if len(key) != 32:
        raise CodecKeyError(f"payload key must be 32 bytes (base64 of 32 bytes), got {len(key)}")
    return key


def new_key() -> str:
    """A fresh key as text for AMBIENT_PAYLOAD_KEY."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class EncryptionCodec(PayloadCodec):
    """Encrypts with ``current`` and decrypts with any key in ``keys``."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise CodecKeyError(f"current key id {current!r} has no key")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current = current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self._current]
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            data = nonce + cipher.encrypt(nonce, payload.SerializeToString(), None)
            encoded.append(
                Payload(metadata={"encoding": ENCODING, KEY_ID: self._current.encode()}, data=data)
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)
                continue
            key_id = payload.metadata.get(KEY_ID, b"").decode()
            if (cipher := self._ciphers.get(key_id)) is None:
                raise CodecKeyError(f"payload encrypted with unknown key id {key_id!r}")
            nonce, body = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
            try:
                clear = cipher.decrypt(nonce, body, None)
            except InvalidTag:
                raise CodecKeyError(
                    f"payload does not decrypt with key id {key_id!r}: it was encrypted with "
                    "another key of that id (keep a replaced key in AMBIENT_PAYLOAD_OLD_KEYS "
                    "under its own id) or altered"
                ) from None
            decoded.append(Payload.FromString(clear))
        return decoded
