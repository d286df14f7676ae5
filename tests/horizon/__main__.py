"""`python -m tests.horizon [PORT] [--quiet]`: the local Horizon for the offline demo.

By default it seeds XLM/USDC (both networks' USDC issuers) and trades once a second, so a server
pointed at it (`STELLAR_HORIZON_URL=http://127.0.0.1:PORT bin/serve`) shows prices move.
`--quiet` serves empty markets that only change through the control API.
"""

import argparse
import asyncio

from .server import serve

parser = argparse.ArgumentParser(prog="python -m tests.horizon")
parser.add_argument("port", type=int, nargs="?", default=8000)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--quiet", action="store_true", help="no demo markets, no live trading")
args = parser.parse_args()
try:
    asyncio.run(serve(args.host, args.port, live=not args.quiet))
except KeyboardInterrupt:
    pass
