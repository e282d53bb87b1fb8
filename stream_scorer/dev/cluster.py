"""A real Redis Cluster on loopback, for tests of cluster mode and of node failures.

Every node is a :func:`~stream_scorer.dev.services.start_redis` process in
its own folder (its ``nodes.conf`` and AOF live there, so a node stopped and
started again comes back with the same identity and keys), joined with
``redis-cli --cluster create``. The cluster bus port of each node is chosen
explicitly: Redis's default, port + 10000, overflows for ports the kernel
hands out above 55535.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from stream_scorer.dev.services import (
    DevServiceError,
    RedisProcess,
    free_port,
    start_redis,
)
from stream_scorer.dev.tls import Certificates

SLOTS = 16384


@dataclass
class RedisClusterProcesses:
    """The nodes of a local cluster; ``index`` arguments index :attr:`nodes`."""

    nodes: list[RedisProcess]
    auth: tuple[str, str] | None = None
    """User and password for the checks here, when an ACL file turns the default user off."""
    tls: Certificates | None = None
    """The certificates when the nodes speak only TLS (clients, cluster bus, replication)."""

    @property
    def url(self) -> str:
        """A seed node for ``redis.asyncio.cluster.RedisCluster.from_url``."""
        return self.nodes[0].url.removesuffix("/0")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def restart(self, index: int, timeout: float = 60.0) -> None:
        """SIGTERM one node, start it again on its folder and port, wait for a healthy cluster."""
        self.nodes[index].restart()
        self.wait_ok(timeout)

    def kill(self, index: int) -> None:
        """SIGKILL one node, as a crash; the others notice after the node timeout.

        Returns at once: :meth:`wait_ok` waits for a failover, :meth:`start` brings
        the node back.
        """
        self.nodes[index].kill()

    def start(self, index: int, timeout: float = 60.0) -> None:
        """Start a stopped or killed node again and wait for a healthy cluster."""
        self.nodes[index].start()
        self.wait_ok(timeout)

    def primaries(self) -> list[int]:
        """Ports of the running nodes that are masters in their own ``CLUSTER NODES``."""
        found = []
        for node in self._running():
            with contextlib.suppress(redis.RedisError):
                (nodes,) = self._ask(node, "CLUSTER NODES")
                for line in nodes.splitlines():
                    flags = line.split()[2].split(",")
                    if "myself" in flags and "master" in flags:
                        found.append(node.port)
        return found

    def reshard(self, source: int, target: int, slots: int, timeout: float = 120.0) -> None:
        """Move ``slots`` slots, keys and all, from the primary on port ``source`` to ``target``.

        ``redis-cli --cluster reshard``, as an operator grows a cluster: while a
        slot moves, its keys are on either node (ASK redirections, TRYAGAIN for
        a call whose keys are split). Returns once every slot has moved.
        """
        cli = _redis_cli()
        by_port = {node.port: node for node in self.nodes}
        ids = [self._ask(by_port[port], "CLUSTER MYID")[0] for port in (source, target)]
        moved = subprocess.run(
            [
                cli,
                *_cli_login(self.auth, self.tls),
                "--cluster",
                "reshard",
                f"127.0.0.1:{source}",
                "--cluster-from",
                ids[0],
                "--cluster-to",
                ids[1],
                "--cluster-slots",
                str(slots),
                "--cluster-yes",
                "--cluster-pipeline",
                "20",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if moved.returncode != 0:
            raise DevServiceError(f"resharding failed:\n{(moved.stdout + moved.stderr)[-3000:]}")
        self.wait_ok(timeout)

    def keys(self, index: int) -> set[str]:
        """The keys node ``index`` holds now: what a restart must give back."""
        with self._client(self.nodes[index]) as client:
            return set(client.scan_iter(count=1000))

    def index(self, port: int) -> int:
        """The index in :attr:`nodes` of the node listening on ``port``."""
        return next(i for i, node in enumerate(self.nodes) if node.port == port)

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Wait until the running nodes agree on a healthy cluster (see :meth:`_problem`).

        After :meth:`kill` this waits for the others to flag the node failed
        and, if it was a master with a replica, for the failover; a master
        without one leaves its slots unserved, so this times out.
        """
        deadline = time.monotonic() + timeout
        problem = "not checked"
        while time.monotonic() < deadline:
            problem = self._problem()
            if not problem:
                return
            time.sleep(0.1)
        raise DevServiceError(f"cluster not healthy after {timeout:.0f}s: {problem}")

    def _client(self, node: RedisProcess) -> redis.Redis:
        """One connection to ``node`` as :attr:`auth`, over TLS when the nodes speak only that."""
        user, password = self.auth or (None, None)
        tls = self.tls
        return redis.Redis(
            host="127.0.0.1",
            port=node.port,
            username=user,
            password=password,
            socket_timeout=5,
            socket_connect_timeout=2,
            decode_responses=True,
            protocol=2,
            single_connection_client=True,
            ssl=tls is not None,
            ssl_ca_certs=None if tls is None else str(tls.ca),
            ssl_certfile=None if tls is None else str(tls.client_cert),
            ssl_keyfile=None if tls is None else str(tls.client_key),
        )

    def _running(self) -> list[RedisProcess]:
        return [node for node in self.nodes if node.proc.poll() is None]

    def _ask(self, node: RedisProcess, *commands: str) -> list[str]:
        """The raw text answers to ``commands`` (e.g. ``"CLUSTER NODES"``), on one connection.

        redis-py's own callbacks would turn ``INFO`` and ``CLUSTER INFO`` into
        dicts of their own shape: the ones asked for here keep the text.
        """
        with self._client(node) as client:
            for command in commands:
                client.set_response_callback(command, str)
            return [str(client.execute_command(command)) for command in commands]

    def _problem(self) -> str:
        """What keeps the cluster from being healthy now, or ``""``.

        Healthy: every running node has ``cluster_state:ok`` with all slots
        served, flags every stopped node ``fail`` and no running one failing,
        and all agree on who is master of which slots and replica of whom
        (right after ``--cluster create`` or a failover, gossip has not told
        everyone yet); every running replica is in sync with its master.
        """
        running = self._running()
        live = {node.port for node in running}
        views: dict[int, dict[int, tuple[str, ...]]] = {}
        for node in running:
            try:
                info_text, nodes_text, replication_text = self._ask(
                    node, "CLUSTER INFO", "CLUSTER NODES", "INFO replication"
                )
            except redis.RedisError as exc:
                return f"node {node.port}: {exc}"
            info, replication = _fields(info_text), _fields(replication_text)
            lines = nodes_text.splitlines()
            if info.get("cluster_state") != "ok":
                return f"node {node.port}: cluster_state {info.get('cluster_state')}"
            if info.get("cluster_slots_ok") != str(SLOTS):
                return f"node {node.port}: cluster_slots_ok {info.get('cluster_slots_ok')}"
            if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                return f"replica {node.port}: link to its master is down"
            ids = {fields[0]: _port(fields[1]) for fields in map(str.split, lines)}
            views[node.port] = {}
            for _, address, flag_text, master, *rest in map(str.split, lines):
                port, flags = _port(address), set(flag_text.split(","))
                if port not in live:
                    if "fail" not in flags:
                        return f"node {node.port} does not see stopped {port} as failed yet"
                    continue
                if flags & {"fail", "fail?", "handshake", "noaddr"} or rest[3] != "connected":
                    return f"node {node.port} sees {port} as {flag_text}, {rest[3]}"
                role = "master" if "master" in flags else "replica"
                views[node.port][port] = (role, str(ids.get(master, master)), *rest[4:])
        if any(view != views[running[0].port] for view in views.values()):
            return "nodes do not agree on masters and replicas yet"
        return ""


def _fields(text: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _port(address: str) -> int:
    """The port of a ``CLUSTER NODES`` address, ``127.0.0.1:7000@17000[,hostname]``."""
    return int(address.split("@", 1)[0].rsplit(":", 1)[1])


def _redis_cli() -> str:
    cli = shutil.which("redis-cli")
    if cli is None:
        raise DevServiceError("redis-cli not found: install it (apt-get install redis-tools)")
    return cli


def _cli_login(auth: tuple[str, str] | None, tls: Certificates | None) -> list[str]:
    """``redis-cli`` options to log in as ``auth``, over TLS with a client certificate."""
    login = ["--user", auth[0], "--pass", auth[1], "--no-auth-warning"] if auth else []
    if tls is not None:
        login += [
            "--tls",
            "--cacert",
            str(tls.ca),
            "--cert",
            str(tls.client_cert),
            "--key",
            str(tls.client_key),
        ]
    return login


def start_redis_cluster(
    workdir: Path,
    masters: int = 3,
    replicas: int = 0,
    appendonly: bool = True,
    node_timeout_ms: int = 3000,
    *,
    acl_file: Path | None = None,
    auth: tuple[str, str] | None = None,
    tls: Certificates | None = None,
) -> RedisClusterProcesses:
    """Start ``masters * (1 + replicas)`` nodes in ``workdir/node-<i>`` and form a cluster.

    ``acl_file`` goes to every node; when it turns the default user off,
    ``auth`` (a user allowed ``+@all``) is what ``redis-cli``, the replicas
    (``masteruser``/``masterauth``) and the health checks log in with. With
    ``tls`` every node speaks only TLS, on its client port, cluster bus and
    replication, and requires a client certificate signed by ``tls.ca``
    (the nodes present ``tls.client_cert`` to each other).
    """
    if masters < 3:
        raise ValueError("Redis Cluster needs at least 3 masters")
    cli = _redis_cli()
    login = _cli_login(auth, tls)
    node_options = ["--masteruser", auth[0], "--masterauth", auth[1]] if auth else []
    if tls is not None:
        node_options += [
            "--tls-cluster",
            "yes",
            "--tls-replication",
            "yes",
            "--tls-client-cert-file",
            str(tls.client_cert),
            "--tls-client-key-file",
            str(tls.client_key),
        ]
    nodes: list[RedisProcess] = []
    cluster = RedisClusterProcesses(nodes=nodes, auth=auth, tls=tls)
    try:
        for i in range(masters * (1 + replicas)):
            extra = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(node_timeout_ms),
                "--cluster-port",
                str(free_port()),
                # A replica's first sync, and its full resync after its master
                # restarts (the AOF keeps no replication id), without 5 s of wait.
                "--repl-diskless-sync-delay",
                "0",
                *node_options,
            ]
            nodes.append(
                start_redis(
                    workdir / f"node-{i}",
                    appendonly=appendonly,
                    acl_file=acl_file,
                    tls=tls,
                    tls_client_auth=tls is not None,
                    extra_args=extra,
                )
            )
        create = subprocess.run(
            [
                cli,
                *login,
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in nodes),
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if create.returncode != 0:
            raise DevServiceError(
                f"redis-cli --cluster create failed:\n{create.stdout}{create.stderr}"
            )
        cluster.wait_ok()
    except BaseException:
        cluster.stop()
        raise
    return cluster
