"""What the automation engine's suites share: a local Horizon of their own per module."""

import pytest

from tests.horizon.server import TEST_RATE_LIMIT, HorizonThread


@pytest.fixture(scope="module")
def horizon():
    thread = HorizonThread(rate_limit=TEST_RATE_LIMIT).start()
    yield thread
    thread.stop()
