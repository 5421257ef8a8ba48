"""Counting SSH connections and remote commands from the test sshd's log (LogLevel VERBOSE), per client connection.

The log is shared: other processes (tests running at the same time) use the same sshd. So a measurement counts only
the lines of ITS connections: each sshd line ends with "from ADDR port PORT", and a connection is ours when
  * its client port belongs to a TCP socket this process holds to the sshd at the end of the window (pooled
    connections stay open; found through /proc), or
  * it comes from a source address given in ``addrs`` (a helper ``ssh`` started by the measured code can be made to
    connect from e.g. 127.0.0.3 with ``ssh -b``; sshd listens on 127.0.0.1, and all of 127/8 is this machine).
The unfiltered deltas are reported too, so a reader can see how much other traffic the window had.
Linux only (/proc).
"""

from __future__ import annotations

import os
import re

_FROM = re.compile(rb" from (\S+) port (\d+)")
KINDS = {b"Accepted publickey for ": "connections", b"Starting session: command for ": "commands",
         b"Starting session: subsystem ": "sftp"}


def size(log: str) -> int:
    return os.path.getsize(log)


def own_ports(server_port: int, pid: int | None = None) -> set[int]:
    """Local ports of the TCP sockets process ``pid`` (default: this one) holds to 127.0.0.1:``server_port``."""
    pid = pid or os.getpid()
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    with open(f"/proc/{pid}/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            if inode in inodes and int(remote.split(":")[1], 16) == server_port:
                ports.add(int(local.split(":")[1], 16))
    return ports


def count(log: str, start: int, end: int | None = None, *, ports: set[int] = frozenset(),
          addrs: set[str] = frozenset()) -> dict[str, dict[str, int]]:
    """Counts of connections, commands and SFTP sessions in the log bytes [start, end): ``ours`` (see the module
    docstring) and ``all``."""
    with open(log, "rb") as f:
        f.seek(start)
        data = f.read() if end is None else f.read(end - start)
    ours = {k: 0 for k in KINDS.values()}
    every = dict(ours)
    addr_set = {a.encode() for a in addrs}
    for line in data.splitlines():
        for marker, kind in KINDS.items():
            if marker in line:
                every[kind] += 1
                m = _FROM.search(line)
                if m and (m.group(1) in addr_set or int(m.group(2)) in ports):
                    ours[kind] += 1
                break
    return {"ours": ours, "all": every}
