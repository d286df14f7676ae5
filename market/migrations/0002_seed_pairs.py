"""Seed the contract's three public pairs on both networks.

XLM_USDC uses Circle's USDC issuer on each network and is enabled. BTC_USDC and ETH_USDC exist on
Stellar only as anchored assets: which anchor's BTC or ETH to quote is an operator's choice, so
they ship disabled with the base issuer empty, and answer "not configured" until it is set.
"""

from django.db import migrations

USDC = {
    "testnet": "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5",
    "public": "GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN",
}


def seed(apps, schema_editor):
    MarketPair = apps.get_model("market", "MarketPair")
    for network, usdc in USDC.items():
        MarketPair.objects.get_or_create(
            name="XLM_USDC", network=network,
            defaults={"base_code": "XLM", "base_issuer": "", "counter_code": "USDC", "counter_issuer": usdc, "enabled": True},
        )
        for base in ("BTC", "ETH"):
            MarketPair.objects.get_or_create(
                name=f"{base}_USDC", network=network,
                defaults={"base_code": base, "base_issuer": "", "counter_code": "USDC", "counter_issuer": usdc, "enabled": False},
            )


def unseed(apps, schema_editor):
    apps.get_model("market", "MarketPair").objects.filter(name__in=["XLM_USDC", "BTC_USDC", "ETH_USDC"]).delete()


class Migration(migrations.Migration):
    dependencies = [("market", "0001_pairs")]
    operations = [migrations.RunPython(seed, unseed)]
