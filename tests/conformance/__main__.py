"""`python -m tests.conformance [PORT]`: serve the conformance server on 127.0.0.1:PORT (3000)."""

import sys

from daphne.cli import CommandLineInterface

port = sys.argv[1] if len(sys.argv) > 1 else "3000"
CommandLineInterface().run(["-b", "127.0.0.1", "-p", port, "tests.conformance.asgi:application"])
