"""`manage.py market_stream`: the market feed over Horizon SSE (MARKET_FEED_MODE=stream)."""

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from market.streaming import StreamFeed


class Command(BaseCommand):
    help = "Follow every enabled pair over Horizon's SSE streams and emit what changes."

    def handle(self, **options):
        if settings.MARKET_FEED_MODE != "stream":
            raise CommandError("MARKET_FEED_MODE is not 'stream': the Celery beat feed is in charge")
        asyncio.run(StreamFeed().run())
