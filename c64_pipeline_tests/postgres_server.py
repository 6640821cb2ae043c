"""A throwaway PostgreSQL server for tests: Debian's binaries, 127.0.0.1 on a free port, a temporary data directory.

    with PostgresServer.start() as server:      # or the `postgres_server` fixture below
        server.env()                             # DAGSTER_POSTGRES_DB / _USER / _PASSWORD for deploy/dagster.yaml
        server.hostname, server.port

As root the server runs as the `postgres` user (PostgreSQL refuses to run as root) through `runuser`, in a directory
that user owns. Every wait is bounded; on exit the server is stopped (fast, then immediate, then killed) and the
directory removed. Missing binaries raise `PostgresUnavailable` (the fixture turns it into a skip that says how to
install them)."""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

INSTALL_HINT = "install it with `bash scripts/install_test_packages.sh` (Debian package postgresql)"
START_TIMEOUT = 60
STOP_TIMEOUT = 30


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries (initdb, pg_ctl) are not installed, or cannot be run here."""


def find_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl (or $C64_PG_BIN_DIR)."""
    candidates = [os.environ["C64_PG_BIN_DIR"]] if os.environ.get("C64_PG_BIN_DIR") else []
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=lambda p: [int(n) for n in re.findall(r"\d+", p)], reverse=True)
    for candidate in candidates:
        path = Path(candidate)
        if all(os.access(path / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return path
    raise PostgresUnavailable(f"PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin: {INSTALL_HINT}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path  # owned by the server's user; data directory, socket, log and password file live here
    port: int
    hostname: str = "127.0.0.1"
    username: str = "dagster"
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    db_name: str = "dagster"
    run_as: str | None = None  # the OS user running the server (None: the current user)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://{self.username}:{self.password}@{self.hostname}:{self.port}/{self.db_name}"

    def env(self) -> dict[str, str]:
        """The environment deploy/dagster.yaml reads its Postgres credentials from."""
        return {
            "DAGSTER_POSTGRES_DB": self.db_name,
            "DAGSTER_POSTGRES_USER": self.username,
            "DAGSTER_POSTGRES_PASSWORD": self.password,
        }

    def connect(self, db_name: str | None = None, timeout: int = 5):
        import psycopg2

        return psycopg2.connect(
            host=self.hostname, port=self.port, user=self.username, password=self.password,
            dbname=db_name or self.db_name, connect_timeout=timeout,
        )

    # --- lifecycle -------------------------------------------------------------------------------------------

    @classmethod
    def start(cls, attempts: int = 3, **kwargs) -> "PostgresServer":
        """initdb + pg_ctl start on a free port (retried when another process took the port first) + CREATE DATABASE."""
        bin_dir = find_bin_dir()
        run_as = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root, and there is no `postgres` user to run the server as: "
                                          + INSTALL_HINT) from None
            if not shutil.which("runuser"):
                raise PostgresUnavailable("running as root, and `runuser` (util-linux) is missing")
            run_as = "postgres"
        root = Path(tempfile.mkdtemp(prefix="c64-pg-"))  # short: the socket path must stay under 107 bytes
        server = cls(bin_dir=bin_dir, root=root, port=0, run_as=run_as, **kwargs)
        try:
            if run_as:
                user = pwd.getpwnam(run_as)
                os.chown(root, user.pw_uid, user.pw_gid)
            server._initdb()
            last_error = None
            for _ in range(attempts):
                server.port = free_port(server.hostname)
                try:
                    server._pg_ctl_start()
                    break
                except RuntimeError as error:  # most likely the port was taken in between; try another
                    last_error = error
            else:
                raise RuntimeError(f"PostgreSQL did not start after {attempts} attempts: {last_error}")
            server._create_database()
        except BaseException:
            server.stop()
            raise
        return server

    def stop(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL to the postmaster) and remove its directory."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                for mode in ("fast", "immediate"):
                    try:
                        self._run([self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", mode, "-w", "-t", str(STOP_TIMEOUT), "stop"],
                                  timeout=STOP_TIMEOUT + 10)
                        break
                    except (RuntimeError, subprocess.TimeoutExpired):
                        continue
                self._kill_postmaster()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- internals -------------------------------------------------------------------------------------------

    def _run(self, args: list, timeout: float, input_text: str | None = None) -> str:
        command = [str(a) for a in args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        try:
            done = subprocess.run(command, cwd=self.root, capture_output=True, text=True, timeout=timeout,
                                  input=input_text, env={**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"})
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"{' '.join(command)} did not finish within {timeout}s{self._log_tail()}") from error
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
                               + self._log_tail())
        return done.stdout

    def _log_tail(self, lines: int = 20) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\nserver log:\n" + "\n".join(tail) if tail else ""

    def _write_owned(self, path: Path, text: str) -> None:
        path.write_text(text)
        os.chmod(path, 0o600)
        if self.run_as:
            user = pwd.getpwnam(self.run_as)
            os.chown(path, user.pw_uid, user.pw_gid)

    def _initdb(self) -> None:
        pwfile = self.root / "pwfile"
        self._write_owned(pwfile, self.password + "\n")
        try:
            self._run([self.bin_dir / "initdb", "-D", self.data_dir, "-U", self.username, f"--pwfile={pwfile}",
                       "--auth-host=scram-sha-256", "--auth-local=peer", "-E", "UTF8", "--locale=C.UTF-8",
                       "--no-sync"], timeout=120)
        finally:
            pwfile.unlink(missing_ok=True)

    def _pg_ctl_start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses={self.hostname} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run([self.bin_dir / "pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-o", options,
                   "-w", "-t", str(START_TIMEOUT), "start"], timeout=START_TIMEOUT + 10)
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # pg_ctl -w waited for the postmaster; wait for TCP logins as well (bounded)
            try:
                self.connect("postgres", timeout=2).close()
                return
            except Exception as error:  # noqa: BLE001 - psycopg2.OperationalError, not imported at module level
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL on port {self.port} does not accept logins: {error}{self._log_tail()}") from error
                time.sleep(0.2)

    def _create_database(self) -> None:
        connection = self.connect("postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{self.db_name}"')
        finally:
            connection.close()

    def _kill_postmaster(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


@pytest.fixture
def postgres_server():
    """A running throwaway PostgreSQL server (skipped with an install hint when the binaries are missing)."""
    try:
        server = PostgresServer.start()
    except PostgresUnavailable as error:
        pytest.skip(str(error))
    try:
        yield server
    finally:
        server.stop()
