"""Starting and stopping the local broker, database and services as child processes."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"directory": 8005, "catalog": 8001, "exchange": 8002, "notifier": 8003, "auditor": 8004}
ROLES = {
    "exchange": {"EXCHANGE_ROLE": "api"},  # the exchange's ingestion runs as a process of its own
    "auditor": {"AUDITOR_ROLE": "trail"},  # and the auditor's oversight
    # The console (on this host) passes on its browsers' addresses: sign-ins are throttled per browser.
    "directory": {"DIRECTORY_TRUSTED_PROXIES": "127.0.0.1"},
}
INGEST_PORT = 8012
OVERSIGHT_PORT = 8013
CONSOLE_PORT = 8006


@dataclass
class Proc:
    name: str
    argv: list[str]
    host: str
    port: int
    url: str
    ready_path: str | None = None  # HTTP path that answers 200 when ready
    env: dict[str, str] = field(default_factory=dict)
    stop_timeout: float = 15.0
    popen: subprocess.Popen | None = None
    pid: int | None = None

    def record(self) -> dict:
        return {"name": self.name, "pid": self.pid, "stop_timeout": self.stop_timeout, "port": self.port}

    @classmethod
    def from_record(cls, r: dict) -> Proc:
        return cls(r["name"], [], "127.0.0.1", r["port"], "", stop_timeout=r["stop_timeout"], pid=r["pid"])


def broker_binary() -> str:
    """The broker binary itself, not the Python wrapper that would leave it orphaned on a signal."""
    path = Path(str(files("noida_db").joinpath("noida-db")))
    path.chmod(0o755)
    return str(path)


def infra_procs(data: Path, kafka_port: int = 9092, mongo_port: int = 27017) -> list[Proc]:
    kafka_dir, mongo_dir = data / "kafka", data / "mongo"
    kafka_dir.mkdir(parents=True, exist_ok=True)
    mongo_dir.mkdir(parents=True, exist_ok=True)
    secantus = str(Path(sys.executable).parent / "secantusd-py")
    return [
        Proc(
            "kafka",
            [
                broker_binary(),
                "start",
                "--only",
                "kafka",
                "--host",
                "127.0.0.1",
                "--kafka-port",
                str(kafka_port),
                "--data-dir",
                str(kafka_dir),
            ],
            "127.0.0.1",
            kafka_port,
            f"127.0.0.1:{kafka_port}",
            stop_timeout=60.0,  # on SIGTERM it writes everything to disk; after heavy use that takes a while
        ),
        Proc(
            "mongodb",
            [
                secantus,
                "--host",
                "127.0.0.1",
                "--port",
                str(mongo_port),
                "--storage-path",
                str(mongo_dir),
                "--cache-size",
                "2G",
                "--log-level",
                "WARNING",
            ],
            "127.0.0.1",
            mongo_port,
            f"mongodb://127.0.0.1:{mongo_port}/?retryWrites=false",
            stop_timeout=10.0,  # it can turn deaf to SIGTERM: bounded wait, then SIGKILL
        ),
    ]


def service_procs(ports: dict[str, int] | None = None, infra: Infra | None = None) -> list[Proc]:
    """The five REST services, the web console and the auditor's faust worker (no HTTP port of its own), with
    their defaults; `infra` points them at another broker and database than the local default ones."""
    ports = ports or {n: int(os.environ.get(f"{n.upper()}_HTTP_PORT", p)) for n, p in SERVICES.items()}
    jwks = f"http://127.0.0.1:{ports['directory']}/.well-known/jwks.json"

    def env(name: str) -> dict[str, str]:
        prefix = name.upper() + "_"
        if infra is None:
            return {}
        return {
            f"{prefix}KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
            f"{prefix}MONGO_URI": infra.mongo_uri,
            f"{prefix}AUTH_JWKS_URL": jwks,
        }

    procs = [
        Proc(
            name,
            [sys.executable, "-m", f"services.{name}"],
            "127.0.0.1",
            port,
            f"http://127.0.0.1:{port}/docs",
            ready_path="/readyz",
            env={f"{name.upper()}_HTTP_PORT": str(port), **env(name), **ROLES.get(name, {})},
        )
        for name, port in ports.items()
    ]

    def second(service: str, role: str, default_port: int, about: str) -> Proc:
        """A service's second process, in `role`, beside the one serving its API (as its own Deployment)."""
        name = f"{service}-{role}"
        variable = f"{name.upper().replace('-', '_')}_HTTP_PORT"
        port = int(os.environ.get(variable, default_port)) if infra is None else free_port()
        prefix = service.upper()
        env_ = {f"{prefix}_HTTP_PORT": str(port), **env(service), f"{prefix}_ROLE": role}
        url = f"http://127.0.0.1:{port}/metrics ({about})"
        return Proc(name, [sys.executable, "-m", f"services.{service}"], "127.0.0.1", port, url, "/readyz", env=env_)

    # The exchange's ingestion runs apart from its API, as on Kubernetes: a flood of changes slows neither; the
    # auditor's oversight beside its trail and REST facade: each reads every data access, on a core of its own.
    procs.append(second("exchange", "ingest", INGEST_PORT, "ingestion of departments' data changes"))
    procs.append(second("auditor", "oversight", OVERSIGHT_PORT, "the auditor's oversight: evaluation counts, findings"))
    # The web console: no broker or database of its own, only the services' addresses.
    console_port = int(os.environ.get("CONSOLE_HTTP_PORT", CONSOLE_PORT)) if infra is None else free_port()
    procs.append(
        Proc(
            "console",
            [sys.executable, "-m", "services.console"],
            "127.0.0.1",
            console_port,
            f"http://127.0.0.1:{console_port}/ (web console: sign in here)",
            ready_path="/readyz",
            env={"CONSOLE_HTTP_PORT": str(console_port)}
            | {f"CONSOLE_{name.upper()}_URL": f"http://127.0.0.1:{port}" for name, port in ports.items()},
        )
    )
    web_port = os.environ.get("AUDITOR_STREAM_WEB_PORT", "6066") if infra is None else str(free_port())
    procs.append(
        Proc(
            "auditor-stream",
            [sys.executable, "-m", "services.auditor.stream"],
            "127.0.0.1",
            0,
            "faust worker: data accesses per department",
            env={"AUDITOR_STREAM_WEB_PORT": web_port, **env("auditor")},
        )
    )
    return procs


def start(proc: Proc, logs: Path, detach: bool, inherit_output: bool = False) -> Proc:
    logs.mkdir(parents=True, exist_ok=True)
    out = None if inherit_output else open(logs / f"{proc.name}.log", "ab")
    proc.popen = subprocess.Popen(
        proc.argv,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **proc.env},
        cwd=ROOT,
        start_new_session=True,  # Ctrl-C reaches only us; we stop children in order, by SIGTERM
    )
    proc.pid = proc.popen.pid
    return proc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # reap if it is our child
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def stop(procs: list[Proc]) -> None:
    """SIGTERM services first, then the database and broker; SIGKILL whatever outlives its timeout."""
    for proc in reversed(procs):
        if proc.pid is None or not _alive(proc.pid):
            continue
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + proc.stop_timeout
        while _alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(proc.pid):
            print(f"{proc.name} ignored SIGTERM for {proc.stop_timeout:.0f}s; killing it", file=sys.stderr)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_port(proc: Proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} while starting")
        try:
            with socket.create_connection((proc.host, proc.port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{proc.name} did not open {proc.host}:{proc.port} within {timeout}s")


def wait_http_ready(proc: Proc, timeout: float = 90) -> None:
    if proc.ready_path is None:
        return
    url = f"http://{proc.host}:{proc.port}{proc.ready_path}"
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.popen and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = exc.read().decode(errors="replace")
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise TimeoutError(f"{proc.name} not ready within {timeout}s: {last}")


@dataclass
class Infra:
    """A broker and a database on free ports with their own data folders (tests and benchmarks)."""

    bootstrap: str
    mongo_uri: str
    procs: list[Proc]
    folder: Path


def free_port() -> int:
    """A port free now for a process started later. Taken below the kernel's ephemeral range: a port the
    kernel hands out (a client's connection, a server bound to port 0) could otherwise be given to another
    process between this check and the later bind, which then reaches someone else's server."""
    low = _ephemeral_ports()[0]
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # the range below is crowded: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ephemeral_ports() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def start_infra(folder: Path) -> Infra:
    kafka_port, mongo_port = free_port(), free_port()
    started: list[Proc] = []
    try:
        for proc in infra_procs(folder / "data", kafka_port, mongo_port):
            started.append(start(proc, folder / "log", detach=False))
            wait_port(proc)
    except BaseException:
        stop(started)
        raise
    return Infra(
        bootstrap=f"127.0.0.1:{kafka_port}",
        mongo_uri=f"mongodb://127.0.0.1:{mongo_port}/?retryWrites=false&directConnection=true",
        procs=started,
        folder=folder,
    )
