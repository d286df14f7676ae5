"""Custodial wallet keys: a wallet's Stellar secret seed, Fernet-encrypted under WALLET_ENCRYPTION_KEY.

For operators who choose custodial signing of payment automations. The seed is taken once
(the admin's write-only field, or `manage.py set_custodial_key` from stdin), checked against
the wallet's public key, encrypted, and only ever decrypted into a Keypair to sign. It is never
logged, never put in an exception message, never returned by an API or admin page. Without a
valid WALLET_ENCRYPTION_KEY nothing is stored and nothing is signed.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from stellar_sdk import Keypair

from transactions.models import Wallet

from .models import CustodialKey


class CustodyError(Exception):
    """A custodial key cannot be stored or used; `code` is the automation:error errorCode."""

    code = "custody_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CustodyUnavailable(CustodyError):
    code = "custody_unavailable"


class CustodialKeyMissing(CustodyError):
    code = "custodial_key_missing"


class CustodialKeyInvalid(CustodyError):
    code = "custodial_key_invalid"


def custody_fernet() -> Fernet:
    """The cipher from WALLET_ENCRYPTION_KEY, checked at use (a bad key is refused, not guessed at)."""
    key = settings.WALLET_ENCRYPTION_KEY
    if not key:
        raise CustodyUnavailable("custodial signing is not configured on this server (WALLET_ENCRYPTION_KEY is not set)")
    try:
        return Fernet(key.encode() if isinstance(key, str) else key)
    except (ValueError, TypeError):
        raise CustodyUnavailable("WALLET_ENCRYPTION_KEY is not a Fernet key (urlsafe base64 of 32 bytes)") from None


def custodial_ciphertext(*, wallet: Wallet, secret: str) -> bytes:
    """`secret` checked to be `wallet`'s key, encrypted (for the admin form and the store)."""
    fernet = custody_fernet()
    try:
        keypair = Keypair.from_secret(secret.strip())
    except Exception:  # the SDK's message could echo the input: say nothing about it
        raise CustodialKeyInvalid("not a Stellar secret seed (S..., 56 characters)") from None
    if keypair.public_key != wallet.public_key:
        raise CustodialKeyInvalid(f"this secret seed is not the key of wallet {wallet.pk} ({wallet.public_key})")
    return fernet.encrypt(keypair.secret.encode())


def custodial_key_store(*, wallet: Wallet, secret: str) -> CustodialKey:
    """Encrypt and keep `secret` for `wallet`, replacing any earlier one."""
    ciphertext = custodial_ciphertext(wallet=wallet, secret=secret)
    stored, _ = CustodialKey.objects.update_or_create(wallet=wallet, defaults={"ciphertext": ciphertext})
    return stored


def custodial_keypair(*, wallet: Wallet) -> Keypair:
    """The wallet's signing keypair; CustodyError when it cannot be had."""
    fernet = custody_fernet()
    stored = CustodialKey.objects.filter(wallet=wallet).first()
    if stored is None:
        raise CustodialKeyMissing(f"wallet {wallet.pk} has no custodial key: an operator must set one")
    try:
        keypair = Keypair.from_secret(fernet.decrypt(bytes(stored.ciphertext)).decode())
    except (InvalidToken, ValueError):
        raise CustodialKeyInvalid(f"the custodial key of wallet {wallet.pk} does not decrypt under WALLET_ENCRYPTION_KEY") from None
    if keypair.public_key != wallet.public_key:
        raise CustodialKeyInvalid(f"the custodial key of wallet {wallet.pk} is not its public key's")
    return keypair
