"""Real local services for the demo and the tests: Apache Kafka and redis-server.

Kafka comes from the official Apache Kafka jars on Maven Central, fetched
once with the machine's Maven into a cache folder and run in KRaft mode (one
node, broker and controller) with the machine's Java. redis-server comes
from the Debian package, installed if missing when running as root. Both
listen on loopback on free ports, live in a throw-away folder, and are
stopped by pid. Children get ``PR_SET_PDEATHSIG`` so that they die with the
process that started them even if it is killed with SIGKILL (strictly, with
the thread that started them: start services from a thread that outlives them).

For tests of secured connections, :func:`start_secure_kafka` adds SASL_SSL
(SCRAM) and mutual-TLS listeners and :func:`start_redis` takes TLS and an ACL
file, with certificates from :mod:`stream_scorer.dev.tls`; a Redis Cluster is
in :mod:`stream_scorer.dev.cluster`.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stream_scorer.dev.tls import Certificates

#: The newest Apache Kafka 4.x checked with aiokafka 0.14 and faust-streaming 0.15.
KAFKA_VERSION = os.environ.get("SCORER_DEV_KAFKA_VERSION", "4.4.0")
LOG4J_VERSION = "2.24.3"
SLF4J_VERSION = "2.0.17"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.stream-scorer</groupId><artifactId>kafka-runtime</artifactId>
  <version>1</version><packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId>
      <version>{slf4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId><version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = error
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


class DevServiceError(RuntimeError):
    """A local service could not be fetched or started; the message says what to do."""


def cache_dir() -> Path:
    """``SCORER_DEV_CACHE``, else ``$XDG_CACHE_HOME/stream-scorer`` (``~/.cache``)."""
    if explicit := os.environ.get("SCORER_DEV_CACHE"):
        return Path(explicit).resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return (Path(base) / "stream-scorer").resolve()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the parent dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(
    cmd: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a child in its own session (Ctrl-C reaches only us) that dies with us."""
    log_file = log_path.open("ab")
    try:
        return subprocess.Popen(
            cmd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        log_file.close()


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM by pid, then SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)


def fetch_kafka(version: str = KAFKA_VERSION) -> Path:
    """The folder of Kafka's runtime jars, downloaded with Maven on first use."""
    home = cache_dir() / f"kafka-{version}"
    libs = home / "libs"
    if (home / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevServiceError("Maven (mvn) is needed to fetch Kafka: apt-get install maven")
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(
        _POM.format(kafka=version, slf4j=SLF4J_VERSION, log4j=LOG4J_VERSION)
    )
    tmp = home / "libs.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(home / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DevServiceError(
            f"fetching Kafka {version} with Maven failed:\n{result.stdout[-3000:]}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    (home / "log4j2.properties").write_text(_LOG4J2)
    (home / ".complete").write_text(version)
    return libs


def ensure_redis_server() -> str:
    """Path of redis-server, installing Debian's package when missing and root."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "redis-server"],
            check=False,
            env=env,
            capture_output=True,
        )
        found = shutil.which("redis-server")
        if found:
            return found
    raise DevServiceError("redis-server not found: install it (apt-get install redis-server)")


@dataclass
class KafkaProcess:
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass
class SecureKafkaProcess(KafkaProcess):
    """Kafka with SASL_SSL (SCRAM), mutual-TLS and PLAINTEXT listeners; ``port`` is PLAINTEXT."""

    sasl_ssl_port: int
    mtls_port: int
    certs: Certificates
    users: dict[str, str]

    @property
    def sasl_ssl_servers(self) -> str:
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def mtls_servers(self) -> str:
        return f"127.0.0.1:{self.mtls_port}"

    @property
    def plaintext_servers(self) -> str:
        return self.bootstrap_servers


@dataclass
class RedisProcess:
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    args: list[str] = field(default_factory=list)
    tls: Certificates | None = None
    """The certificates when ``port`` is a TLS port (then clients need ``tls.ca``)."""

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.proc)

    def kill(self) -> None:
        """SIGKILL, as a crash: no AOF rewrite, no goodbye to replicas or the cluster."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def start(self) -> None:
        """Start again on the same port, data folder and options, if not running."""
        if self.proc.poll() is None:
            return
        self.proc = spawn(self.args, self.workdir / "redis.log", cwd=self.workdir)
        _wait_for(lambda: _port_open(self.port), self.proc, 20, self.workdir / "redis.log")

    def restart(self) -> None:
        """Stop and start again on the same port and data folder (for fault tests)."""
        self.stop()
        self.start()


def _wait_for(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise DevServiceError(f"process exited with {proc.returncode}:\n{tail}")
        if ready():
            return
        time.sleep(0.1)
    stop_process(proc)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise DevServiceError(f"not ready after {timeout:.0f}s:\n{tail}")


def _kafka_runtime() -> tuple[str, Path]:
    """Java and Kafka's jars, fetched on first use."""
    libs = fetch_kafka()
    java = shutil.which("java")
    if java is None:
        raise DevServiceError("Java 17+ is needed to run Kafka: apt-get install openjdk-17-jre")
    return java, libs


def _run_kraft(
    workdir: Path,
    listeners: dict[str, int],
    partitions: int,
    config: Sequence[str] = (),
    format_args: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """Format a fresh KRaft log folder and start a one-node broker+controller.

    ``listeners`` maps listener names, each also its security protocol
    (``PLAINTEXT`` first: brokers talk on it), to ports; the CONTROLLER
    listener is added on a free port. ``config`` is appended to
    ``server.properties`` and ``format_args`` to ``StorageTool format``
    (SCRAM users are records written at format time in KRaft).
    """
    java, libs = _kafka_runtime()
    workdir.mkdir(parents=True, exist_ok=True)
    controller = free_port()
    names = list(listeners)
    advertised = ",".join(f"{name}://127.0.0.1:{listeners[name]}" for name in names)
    props = workdir / "server.properties"
    props.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller}",
                f"listeners={advertised},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners={advertised}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map="
                + ",".join(f"{name}:{name}" for name in names)
                + ",CONTROLLER:PLAINTEXT",
                f"inter.broker.listener.name={names[0]}",
                f"log.dirs={workdir / 'data'}",
                f"num.partitions={partitions}",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                *config,
                "",
            ]
        )
    )
    classpath = f"{libs}/*"
    log4j = f"-Dlog4j2.configurationFile={libs.parent / 'log4j2.properties'}"
    cluster_id = "k" + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")[1:]
    fmt = subprocess.run(
        [
            java,
            "-cp",
            classpath,
            log4j,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(props),
            *format_args,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if fmt.returncode != 0:
        raise DevServiceError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
    log = workdir / "kafka.log"
    proc = spawn(
        [
            java,
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            log4j,
            "-cp",
            classpath,
            "kafka.Kafka",
            str(props),
        ],
        log,
    )

    def started() -> bool:
        return (
            log.exists()
            and "Kafka Server started" in log.read_text(errors="replace")
            and all(_port_open(port) for port in listeners.values())
        )

    _wait_for(started, proc, 90, log)
    return proc


def start_kafka(workdir: Path, port: int | None = None, partitions: int = 4) -> KafkaProcess:
    """A one-node KRaft Kafka with one PLAINTEXT listener on loopback."""
    port = port or free_port()
    proc = _run_kraft(workdir, {"PLAINTEXT": port}, partitions)
    return KafkaProcess(proc=proc, port=port, workdir=workdir)


SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def start_secure_kafka(
    workdir: Path, certs: Certificates, users: dict[str, str], partitions: int = 4
) -> SecureKafkaProcess:
    """A one-node KRaft Kafka with SASL_SSL (SCRAM), mutual-TLS and PLAINTEXT listeners.

    ``SASL_SSL`` takes SCRAM-SHA-256 and SCRAM-SHA-512 for every user in
    ``users`` (name to password); ``SSL`` requires a client certificate signed
    by ``certs.ca``; ``PLAINTEXT`` is the inter-broker listener, handy to set
    up topics in tests. No authorizer: an authenticated client may do anything.
    """
    format_args: list[str] = []
    for name, password in users.items():
        if "," in name + password or not name:
            raise ValueError(f"Kafka's --add-scram cannot take a comma or empty name: {name!r}")
        for mechanism in SCRAM_MECHANISMS:
            format_args += ["--add-scram", f'{mechanism}=[name="{name}",password="{password}"]']
    scram_login = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    config = [
        f"sasl.enabled.mechanisms={','.join(SCRAM_MECHANISMS)}",
        *(
            f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config={scram_login}"
            for mechanism in SCRAM_MECHANISMS
        ),
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={certs.server_keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={certs.ca}",
        "listener.name.ssl.ssl.client.auth=required",
    ]
    ports = {"PLAINTEXT": free_port(), "SASL_SSL": free_port(), "SSL": free_port()}
    proc = _run_kraft(workdir, ports, partitions, config, format_args)
    return SecureKafkaProcess(
        proc=proc,
        port=ports["PLAINTEXT"],
        workdir=workdir,
        sasl_ssl_port=ports["SASL_SSL"],
        mtls_port=ports["SSL"],
        certs=certs,
        users=dict(users),
    )


def start_redis(
    workdir: Path,
    port: int | None = None,
    appendonly: bool = False,
    *,
    tls: Certificates | None = None,
    tls_client_auth: bool = False,
    acl_file: Path | None = None,
    extra_args: Sequence[str] = (),
) -> RedisProcess:
    """Start redis-server on loopback with its data in ``workdir``.

    With ``tls`` the only port is a TLS port (plain TCP is off) whose server
    certificate is ``tls.server_cert``; client certificates signed by
    ``tls.ca`` are accepted, and required with ``tls_client_auth``.
    ``acl_file`` is Redis's ``aclfile`` (``user alice on >pw ~* +@all``
    lines; ``user default off ~* &* +@all`` makes every client log in, and
    leaves Redis the permissions it replays its append-only file with:
    :data:`~stream_scorer.connections.redis.DEFAULT_USER_ACL_RULES`). ``extra_args``
    are more ``--option value`` pairs, e.g. cluster mode.
    """
    server = ensure_redis_server()
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    if tls is None:
        listen = ["--port", str(port)]
    else:
        listen = [
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(tls.server_cert),
            "--tls-key-file",
            str(tls.server_key),
            "--tls-ca-cert-file",
            str(tls.ca),
            "--tls-auth-clients",
            "yes" if tls_client_auth else "optional",
        ]
    args = [
        server,
        *listen,
        "--bind",
        "127.0.0.1",
        "--dir",
        str(workdir),
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--appendfsync",
        "always",
        "--protected-mode",
        "yes",
        *(["--aclfile", str(acl_file.resolve())] if acl_file is not None else []),
        *extra_args,
    ]
    proc = spawn(args, workdir / "redis.log", cwd=workdir)
    _wait_for(lambda: _port_open(port), proc, 20, workdir / "redis.log")
    return RedisProcess(proc=proc, port=port, workdir=workdir, args=args, tls=tls)


@contextlib.contextmanager
def local_services(appendonly: bool = False) -> Iterator[tuple[KafkaProcess, RedisProcess]]:
    """Kafka and Redis for the length of a ``with`` block, in a temporary folder."""
    root = Path(tempfile.mkdtemp(prefix="stream-scorer-"))
    kafka: KafkaProcess | None = None
    redis: RedisProcess | None = None
    try:
        redis = start_redis(root / "redis", appendonly=appendonly)
        kafka = start_kafka(root / "kafka")
        yield kafka, redis
    finally:
        if kafka is not None:
            kafka.stop()
        if redis is not None:
            redis.stop()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m stream_scorer.dev.services fetch|up``: prepare or run local services."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["fetch"]:
        print(f"Kafka {KAFKA_VERSION} jars: {fetch_kafka()}")
        print(f"redis-server: {ensure_redis_server()}")
        return 0
    if args == ["up"]:
        with local_services() as (kafka, redis):
            print(f"export SCORER_KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}")
            print(f"export SCORER_REDIS_URL={redis.url}")
            print(
                f"# kafka pid {kafka.proc.pid}, redis pid {redis.proc.pid}; Ctrl-C stops both",
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
        return 0
    print("usage: python -m stream_scorer.dev.services fetch|up", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
