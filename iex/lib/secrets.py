"""Encryption at rest for the credentials merchants give us (shop tokens, accounting API keys).

Keys come from CREDENTIALS_KEYS, newest first. MultiFernet encrypts with the first key and decrypts with any,
so rotation is: prepend a new key, run `rotate()` over stored values, then drop the old key.
"""

from functools import cache, lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key. Never return the ciphertext instead."""


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.CREDENTIALS_KEYS))


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    return _decrypted(token, tuple(settings.CREDENTIALS_KEYS))


@lru_cache(maxsize=1024)
def _decrypted(token: str, keys: tuple[str, ...]) -> str:
    # Every transfer reads both its modules' credentials: each stored value is decrypted once per process (the
    # plaintext is in this process's memory while it is used anyway).
    try:
        return _fernet(keys).decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError("stored secret does not decrypt with any key in CREDENTIALS_KEYS") from None


def rotate(token: str) -> str:
    """Re-encrypt with the newest key."""
    try:
        return _current().rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError("stored secret does not decrypt with any key in CREDENTIALS_KEYS") from None
