"""The socket.io-client browser bundle, read from the npm package bin/setup installs (web/node_modules)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent / "node_modules" / "socket.io-client"
# The names Socket.IO's own server serves under /socket.io/, less the msgpack bundle (this
# server speaks the default JSON parser only).
FILE_NAME = re.compile(r"^socket\.io(\.esm)?(\.min)?\.js(\.map)?$")


class BundleMissing(Exception):
    """socket.io-client is not installed: bin/setup (with npm) installs it."""


@dataclass(frozen=True)
class BundleFile:
    body: bytes
    content_type: str
    etag: str  # the client's version, quoted, as Socket.IO's server sends it


@cache
def client_version() -> str:
    try:
        return json.loads((PACKAGE_DIR / "package.json").read_text())["version"]
    except FileNotFoundError:
        raise BundleMissing("socket.io-client is not installed: run bin/setup (it needs npm)") from None


@cache
def bundle_file(name: str) -> BundleFile | None:
    """The file `name` (e.g. socket.io.min.js), held in memory once read; None if no such file."""
    if not FILE_NAME.match(name):
        return None
    version = client_version()
    path = PACKAGE_DIR / "dist" / name
    if not path.is_file():
        return None
    kind = "json" if name.endswith(".map") else "javascript"
    return BundleFile(path.read_bytes(), f"application/{kind}; charset=utf-8", f'"{version}"')
