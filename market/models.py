"""Market pairs as data: which Stellar assets a pair name stands for, on which network, from where."""

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from stellar_sdk import StrKey

# Stellar asset codes are 1-12 alphanumerics; a pair name is BASE_COUNTER (the room's form).
ASSET_CODE = RegexValidator(r"^[A-Za-z0-9]{1,12}$", "an asset code is 1 to 12 letters or digits")
PAIR_NAME = RegexValidator(r"^[A-Z0-9]{1,12}_[A-Z0-9]{1,12}$", "a pair name is BASE_COUNTER in capitals, e.g. XLM_USDC")
NATIVE_CODE = "XLM"

ISSUER_HELP = (
    "The issuing account (G...) of this asset. Leave empty only for native XLM. For anchored assets "
    "(BTC, ETH, ...) choose the anchor you trust and paste its issuer from stellar.expert or the "
    "anchor's stellar.toml; the pair stays unavailable until it is set."
)


def validate_issuer(value: str) -> None:
    if value and not StrKey.is_valid_ed25519_public_key(value):
        raise ValidationError("not a Stellar account id (G..., 56 characters)")


class MarketPair(models.Model):
    class Network(models.TextChoices):
        TESTNET = "testnet", "testnet"
        PUBLIC = "public", "public (mainnet)"

    class Source(models.TextChoices):
        HORIZON = "horizon", "Stellar Horizon (SDEX order book and trades)"

    name = models.CharField(max_length=25, validators=[PAIR_NAME], help_text="BASE_COUNTER, e.g. XLM_USDC: the room is market:{name}.")
    network = models.CharField(max_length=10, choices=Network.choices, default=Network.TESTNET,
                               help_text="Served only by servers whose STELLAR_NETWORK is this network.")
    base_code = models.CharField(max_length=12, validators=[ASSET_CODE], help_text="XLM for the native asset.")
    base_issuer = models.CharField(max_length=56, blank=True, validators=[validate_issuer], help_text=ISSUER_HELP)
    counter_code = models.CharField(max_length=12, validators=[ASSET_CODE])
    counter_issuer = models.CharField(max_length=56, blank=True, validators=[validate_issuer], help_text=ISSUER_HELP)
    enabled = models.BooleanField(default=False, help_text="Only enabled, configured pairs are fed and can be subscribed to.")
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.HORIZON)
    horizon_url = models.URLField(blank=True, help_text="Another Horizon for this pair only; empty = STELLAR_HORIZON_URL.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["network", "name"]
        constraints = [models.UniqueConstraint(fields=["name", "network"], name="market_pair_unique_per_network")]

    def __str__(self) -> str:
        return f"{self.name} ({self.network})"

    @staticmethod
    def side_is_configured(code: str, issuer: str) -> bool:
        return bool(issuer) or code.upper() == NATIVE_CODE

    @property
    def missing(self) -> list[str]:
        """What an operator still has to fill in before this pair can be served."""
        missing = []
        if not self.side_is_configured(self.base_code, self.base_issuer):
            missing.append(f"base asset issuer ({self.base_code})")
        if not self.side_is_configured(self.counter_code, self.counter_issuer):
            missing.append(f"counter asset issuer ({self.counter_code})")
        return missing

    @property
    def is_configured(self) -> bool:
        return not self.missing

    def clean(self) -> None:
        if self.enabled and self.missing:
            raise ValidationError(f"{self.name} cannot be enabled before its {' and '.join(self.missing)} is set")
