"""Sealing secrets that are stored in the sessions table (a sandbox's access token) with KMS.

The ciphertext is bound to an encryption context (the sandbox it belongs to): KMS refuses to
decrypt it under any other, so a value copied to an item of another sandbox opens nowhere, and
every decrypt is in CloudTrail with its context. Reading the table alone reveals no token.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sandbox_gateway.models.errors import ProviderUnavailable


class KmsSealer:
    def __init__(self, key_id: str, client: Callable[[], Any]) -> None:
        self._key_id = key_id
        self._client = client  # built on first use: nothing connects at import or in a snapshot

    def seal(self, plaintext: bytes, context: dict[str, str]) -> str:
        try:
            answer = self._client().encrypt(
                KeyId=self._key_id, Plaintext=plaintext, EncryptionContext=context
            )
        except (BotoCoreError, ClientError) as exc:
            raise ProviderUnavailable("could not seal the sandbox's access token with KMS") from exc
        return base64.b64encode(answer["CiphertextBlob"]).decode()

    def open(self, sealed: str, context: dict[str, str]) -> bytes:
        try:
            answer = self._client().decrypt(
                KeyId=self._key_id, CiphertextBlob=base64.b64decode(sealed), EncryptionContext=context
            )
        except (BotoCoreError, ClientError) as exc:
            raise ProviderUnavailable("could not open the sandbox's sealed access token with KMS") from exc
        return bytes(answer["Plaintext"])
