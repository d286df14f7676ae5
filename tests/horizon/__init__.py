"""A Horizon-compatible local server for the tests and the offline demo (`python -m tests.horizon PORT`)."""
