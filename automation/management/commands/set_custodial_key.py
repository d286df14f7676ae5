"""manage.py set_custodial_key WALLET_ID: store a wallet's secret seed, read from stdin, encrypted."""

import sys

from django.core.management.base import BaseCommand, CommandError

from automation.custody import CustodyError, custodial_key_store
from transactions.errors import WalletNotFound
from transactions.selectors import wallet_of


class Command(BaseCommand):
    help = ("Store WALLET_ID's Stellar secret seed for custodial signing of payment automations. The seed is read "
            "from stdin (never an argument: arguments land in shell history and process lists), checked against the "
            "wallet's public key and kept only encrypted under WALLET_ENCRYPTION_KEY.")

    def add_arguments(self, parser):
        parser.add_argument("wallet_id")

    def handle(self, *args, wallet_id: str, **options):
        try:
            wallet = wallet_of(wallet_id=wallet_id)
        except WalletNotFound:
            raise CommandError(f"no wallet {wallet_id}") from None
        if sys.stdin.isatty():
            self.stderr.write("secret seed (S...), then Enter: ", ending="")
        secret = sys.stdin.readline().strip()
        try:
            custodial_key_store(wallet=wallet, secret=secret)
        except CustodyError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"custodial key stored for wallet {wallet.pk} ({wallet.public_key})")
