"""A cluster on one machine: N ``nve serve`` nodes behind nginx, sharing one database, Redis and MEDIA_DIR.

    python -m perf.cluster --nodes 3 --workers 1 --port 8080 --database-url postgresql://... \\
        --redis-url redis://127.0.0.1:6379/0

runs one until Ctrl-C (the balancer at ``http://127.0.0.1:8080``, each node on a port of
its own); tests/cluster/ and ``python -m perf ws-fanout --nodes 3`` use :class:`Cluster`
directly. Every node is the production command in a session of its own, so killing its
process group (:meth:`Cluster.kill`) takes its media workers with it, as a lost machine
would. nginx is Debian's binary run with its own prefix and configuration
(deploy/nginx.conf.template) in the cluster's work directory, never the system service.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "nginx.conf.template"
NGINX_TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
START_TIMEOUT = 60.0


class NginxMissing(RuntimeError):
    """Debian's nginx is not installed; the message says how to install it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nginx_binary() -> str:
    binary = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if binary is None:
        raise NginxMissing("nginx is not installed: apt-get install -y nginx "
                           "(.ci/run: command -v nginx >/dev/null || need_apt+=(nginx))")
    return binary


def _user_line() -> str:
    """As root, nginx's workers drop to an unprivileged user; Debian has nobody/nogroup."""
    if os.geteuid() != 0:
        return ""
    try:
        pwd.getpwnam("nobody")
        grp.getgrnam("nogroup")
    except KeyError:
        return "user root root;"
    return "user nobody nogroup;"


def render_nginx_conf(prefix: Path, listen: str, upstreams: list[str]) -> str:
    """deploy/nginx.conf.template with its fields filled: ``upstreams`` are ``host:port`` of the nodes."""
    servers = "\n".join(f"        server {address} max_fails=1 fail_timeout=5s;" for address in upstreams)
    fields = {"prefix": str(prefix), "user": _user_line(), "listen": listen, "servers": servers}
    text = TEMPLATE.read_text()
    for name, value in fields.items():
        text = text.replace("{{" + name + "}}", value)
    return text


def _wait_http(url: str, alive: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if alive.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} did not come up (exit {alive.poll()}):\n{tail}")
        time.sleep(0.1)


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the comm field may hold spaces and parentheses


@dataclass
class Node:
    index: int
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def owns(self, pid: int) -> bool:
        """Whether ``pid`` is this node or one of its worker processes (its direct children)."""
        return pid == self.process.pid or _parent_of(pid) == self.process.pid


@dataclass
class Cluster:
    """``nodes`` servers, each with ``workers`` media workers, and nginx in front of them."""

    database_url: str
    redis_url: str
    media_dir: Path
    workdir: Path
    nodes: int = 3
    workers: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment of every node (``NVE_JOB_LEASE``, ``NVE_BENCH``, ...)."""
    port: int = 0
    """The balancer's port; 0 picks a free one."""
    members: list[Node] = field(default_factory=list)
    nginx: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Cluster:
        """Start the nodes (in parallel), wait until each is healthy, then nginx; stops all on failure."""
        binary = nginx_binary()
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        try:
            for index in range(self.nodes):
                self.members.append(self._spawn(index))
            for node in self.members:
                _wait_http(f"{node.url}/healthz", node.process, node.log, f"node {node.index}")
            self._start_nginx(binary)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, index: int) -> Node:
        port = free_port()
        data_dir = self.workdir / f"node-{index}"
        data_dir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / f"node-{index}.log"
        # Open access: every client of this one-machine cluster is the machine's own user, but
        # behind nginx no request looks local to the default (auto) mode.
        env = {**os.environ, "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url,
               "MEDIA_DIR": str(self.media_dir), "NVE_WORKERS": str(self.workers),
               "NVE_TRUSTED_PROXIES": "127.0.0.1", "NVE_ACCESS": "open", **self.env}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "--log-level", "WARNING", "serve", "--host", "127.0.0.1",
                 "--port", str(port), "--data-dir", str(data_dir), "--no-access-log"],
                env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        return Node(index, port, process, log)

    def _start_nginx(self, binary: str) -> None:
        prefix = self.workdir / "nginx"
        prefix.mkdir(parents=True, exist_ok=True)
        for name in NGINX_TEMP_DIRS:
            (prefix / name).mkdir(exist_ok=True)
            (prefix / name).chmod(0o777)  # nginx's workers run unprivileged when started as root
        for directory in (self.workdir, prefix):
            directory.chmod(directory.stat().st_mode | 0o755)
        conf = prefix / "nginx.conf"
        conf.write_text(render_nginx_conf(prefix, f"127.0.0.1:{self.port}",
                                          [f"127.0.0.1:{node.port}" for node in self.members]))
        log = prefix / "stderr.log"
        with log.open("wb") as out:
            self.nginx = subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
                                          stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        _wait_http(f"{self.url}/healthz", self.nginx, log, "nginx")

    def node_of(self, pid: int) -> Node | None:
        """The node that runs process ``pid`` (a server or one of its workers)."""
        return next((node for node in self.members if node.process.poll() is None and node.owns(pid)), None)

    def kill(self, node: Node) -> None:
        """SIGKILL the node's whole process group (server and workers): a machine lost mid-job."""
        os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait()

    def stop(self) -> None:
        """SIGTERM every node (workers hand their jobs back) and nginx; SIGKILL what outlives the grace."""
        alive = [node.process for node in self.members if node.process.poll() is None]
        for process in alive:
            process.send_signal(signal.SIGTERM)
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)
            alive.append(self.nginx)
        deadline = time.monotonic() + 20
        for process in alive:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for node in self.members:  # the whole group, so that no worker of a stuck node outlives it
            _kill_group(node.process)
        if self.nginx is not None:
            _kill_group(self.nginx)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perf.cluster", description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="media workers per node")
    parser.add_argument("--port", type=int, default=8080, help="the balancer's port")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="shared PostgreSQL")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--media-dir", type=Path, help="shared MEDIA_DIR (default: in the work directory)")
    parser.add_argument("--workdir", type=Path, help="logs, node data dirs, nginx prefix (default: a temp dir)")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url (or DATABASE_URL) is required: the nodes must share one database")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nve-cluster-"))
    cluster = Cluster(args.database_url, args.redis_url, args.media_dir or workdir / "media", workdir,
                      nodes=args.nodes, workers=args.workers, port=args.port)
    cluster.start()
    print(f"balancer {cluster.url}  nodes " + " ".join(node.url for node in cluster.members)
          + f"  (logs in {workdir}; Ctrl-C stops)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
