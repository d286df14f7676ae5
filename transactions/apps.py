from django.apps import AppConfig


class TransactionsConfig(AppConfig):
    name = "transactions"

    def ready(self):
        from . import signals  # noqa: F401  (connects the receivers)
