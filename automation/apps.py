from django.apps import AppConfig


class AutomationConfig(AppConfig):
    name = "automation"

    def ready(self):
        from market.signals import price_updated
        from transactions.signals import transaction_settled

        from . import receivers, signals  # noqa: F401  (signals connects its receivers)

        price_updated.connect(receivers.on_price_updated, dispatch_uid="automation.on_price_updated")
        transaction_settled.connect(receivers.on_transaction_settled, dispatch_uid="automation.on_transaction_settled")
