"""Run an owner lookup that reads the old owner, then an owner change that commits, then the
lookup's cache write, in that order (a test helper process: tests/realtime/test_permissions.py).

Run with DATABASE_URL (migrated) and REDIS_URL ("" for the local-memory cache). The lookup is
the real policy on the real selector; only REALTIME_ROOM_OWNERS points at a wrapper that holds
the lookup between its database read and its return (so before its cache write) until the
change has committed and its after-commit work is done. Prints one JSON line:
{"during": owner the held lookup returned, "after": owner a later lookup returns,
 "old_owner_let_in": whether the policy still lets the old owner in}.
"""

import asyncio
import json
import threading
import uuid

import django

READ = threading.Event()  # the held lookup has read the database
RELEASE = threading.Event()  # the owner change has committed: the lookup may go on
HOLD_SECONDS = 30  # a safety net only: the test fails rather than hangs if a step never comes


def held_wallet_owner(wallet_id: str) -> str | None:
    """transactions.selectors.wallet_owner, held after its read the first time only."""
    from transactions.selectors import wallet_owner

    owner = wallet_owner(wallet_id)
    if not READ.is_set():
        READ.set()
        assert RELEASE.wait(HOLD_SECONDS), "the owner change never committed"
    return owner


def give_wallet(wallet_id: str, owner: str) -> None:
    """What the admin does: save the row in autocommit; the after-commit work runs in save()."""
    from transactions.models import Wallet

    wallet = Wallet.objects.get(pk=wallet_id)
    wallet.owner_id = owner
    wallet.save()


async def race() -> dict:
    from django.conf import settings
    from stellar_sdk import Keypair

    from realtime.auth import Principal
    from realtime.errors import Forbidden
    from realtime.permissions import check_room_access, room_owner
    from transactions.models import Wallet

    settings.REALTIME_ROOM_OWNERS = {**settings.REALTIME_ROOM_OWNERS, "wallet": f"{__name__}.held_wallet_owner"}
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    wallet = await asyncio.to_thread(
        lambda: str(Wallet.objects.create(owner_id=old, public_key=Keypair.random().public_key, label="race").pk)
    )
    lookup = asyncio.ensure_future(room_owner("wallet", wallet))
    assert await asyncio.to_thread(READ.wait, HOLD_SECONDS), "the lookup never read the database"
    await asyncio.to_thread(give_wallet, wallet, new)  # another thread: the lookup holds the ORM's
    RELEASE.set()
    during = await lookup
    after = await room_owner("wallet", wallet)
    try:
        await check_room_access(Principal(old, "", (), 0), f"wallet:{wallet}")
        let_in = True
    except Forbidden:
        let_in = False
    return {"during": during, "after": after, "old": old, "new": new, "old_owner_let_in": let_in}


def main() -> None:
    django.setup()
    print(json.dumps(asyncio.run(race())), flush=True)


if __name__ == "__main__":
    main()
