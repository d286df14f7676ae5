"""The server process's garbage collection, as galaxy.asgi leaves it (README, "Benchmark")."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.servers import BASE_ENV, ROOT

PROBE = """
import gc, json
before = gc.get_threshold()
import galaxy.asgi
print(json.dumps({"default": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                  "tracked": len(gc.get_objects())}))
"""


def test_start_up_objects_are_frozen_and_full_collections_come_less_often():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", **BASE_ENV, "REDIS_URL": ""})
    assert result.returncode == 0, result.stderr
    gc_state = json.loads(result.stdout.strip().splitlines()[-1])
    # The young generations as Python sets them; full collections ten times rarer.
    assert gc_state["after"] == [*gc_state["default"][:2], 100] and gc_state["default"][2] == 10
    # Django and the apps, built: out of every collection, far more than what is left to walk.
    assert gc_state["frozen"] > 50_000 and gc_state["frozen"] > 10 * gc_state["tracked"]
