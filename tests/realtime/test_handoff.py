"""The WebSocket hand-over's meeting place (realtime/transports/handoff.py): only the service's
user may bind a node's name there or send its processes descriptors, and a descriptor that is
not a TCP connection is closed, not kept."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys

import pytest

from realtime.transports import handoff


def test_the_meeting_place_is_a_directory_of_this_user_only():
    path = handoff.meeting_place()
    info = path.lstat()
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
    assert stat.S_IMODE(info.st_mode) & 0o077 == 0


@pytest.mark.skipif(os.getuid() != 0 or shutil.which("setpriv") is None,
                    reason="taking another user's identity needs root and setpriv (CI runs as root)")
def test_another_user_cannot_take_a_node_name_there():
    name = str(handoff.meeting_place() / "squatter.sock")
    code = f"import socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).bind({name!r})"
    squat = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
                           capture_output=True, text=True)
    assert squat.returncode != 0 and "PermissionError" in squat.stderr
    assert not os.path.exists(name)


def test_a_descriptor_that_is_not_a_tcp_connection_is_closed():
    read_end, write_end = os.pipe()
    os.close(write_end)
    assert handoff._stream_socket(read_end) is None
    with pytest.raises(OSError):
        os.fstat(read_end)  # closed
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    descriptor = unix.detach()
    assert handoff._stream_socket(descriptor) is None
    with pytest.raises(OSError):
        os.fstat(descriptor)


def test_names_left_by_processes_that_died_are_removed_and_live_ones_kept():
    place = handoff.meeting_place()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(place / "dead-node.sock"))
    dead.close()  # as a SIGKILLed process leaves it: the file stays, nobody reads it
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as live:
        live.bind(str(place / "live-node.sock"))
        try:
            handoff.forget_the_dead(place, ".sock", socket.SOCK_DGRAM)
            assert not (place / "dead-node.sock").exists()
            assert (place / "live-node.sock").exists()
        finally:
            (place / "live-node.sock").unlink()
