"""What a local server costs the machine, read from ``/proc``: its process tree's memory,
file descriptors and PostgreSQL connections.

The server is found by the TCP port it listens on, so the same code measures a server the
harness started and one it was pointed at with ``--url`` (as long as it runs on this
machine, as this user). Its tree is the server process and every descendant: the media
workers ``nve serve`` spawns, and their own process pools.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
LISTEN, ESTABLISHED = "0A", "01"  # socket states as /proc/net/tcp writes them
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class TreeSample:
    """One reading of a process tree."""

    processes: int
    rss_mib: float
    """Sum of the tree's resident sets (shared pages counted in each process: a steady
    over-count, which does not affect growth)."""
    main_rss_mib: float
    """The server process alone: where connections, subscriptions and caches live."""
    fds: int
    pg_connections: int
    """TCP connections from the tree to the PostgreSQL port."""
    pids: frozenset[int]


def _sockets() -> dict[int, tuple[int, int, str]]:
    """Every TCP socket of this network namespace: inode -> (local port, remote port, state)."""
    sockets: dict[int, tuple[int, int, str]] = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
            sockets[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state)
    return sockets


def _socket_inodes(pid: int) -> list[int]:
    """The inodes of ``pid``'s open sockets ([] if it is gone or not ours to read)."""
    inodes = []
    try:
        for fd in os.scandir(PROC / str(pid) / "fd"):
            try:
                target = os.readlink(fd.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.append(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def listening_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` on this machine, None if none of ours is."""
    listening = {inode for inode, (local, _, state) in _sockets().items() if local == port and state == LISTEN}
    if not listening:
        return None
    for entry in PROC.iterdir():
        if entry.name.isdigit() and listening.intersection(_socket_inodes(int(entry.name))):
            return int(entry.name)
    return None


def _children() -> dict[int, list[int]]:
    """parent pid -> child pids, for every process now alive."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2:].split()[1])  # the command may hold spaces and parens
        children.setdefault(parent, []).append(int(entry.name))
    return children


def _rss_mib(pid: int) -> float:
    try:
        return int((PROC / str(pid) / "statm").read_text().split()[1]) * PAGE / 2**20
    except (OSError, IndexError):
        return 0.0


def _fd_count(pid: int) -> int:
    try:
        return sum(1 for _ in os.scandir(PROC / str(pid) / "fd"))
    except OSError:
        return 0


def sample_tree(pid: int, pg_port: int) -> TreeSample:
    """Read ``pid``'s tree now."""
    children = _children()
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending += children.get(current, [])
    sockets = _sockets()
    pg = sum(1 for member in tree for inode in _socket_inodes(member)
             if inode in sockets and sockets[inode][1] == pg_port and sockets[inode][2] == ESTABLISHED)
    return TreeSample(processes=len(tree), rss_mib=sum(_rss_mib(member) for member in tree),
                      main_rss_mib=_rss_mib(pid), fds=sum(_fd_count(member) for member in tree),
                      pg_connections=pg, pids=frozenset(tree))
