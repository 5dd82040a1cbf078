"""A private PgBouncer in transaction pooling mode, for the tests that run through a pooler.

`PgBouncer.start()` writes its own configuration into a fresh directory and starts Debian's
pgbouncer on a free loopback port in front of the test PostgreSQL: every database name is passed
through (`* = host=... port=...`), any role signs in (trust, with the role looked up through
`auth_user`, so the tests' throw-away web roles work too), and each client's transactions go round
robin over several server connections, so a transaction rarely lands where the one before it ran:
state a client left on "its" connection (a SET, a prepared statement) shows up as the bug it is.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy.engine import URL, make_url

from tests.net import free_port

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
# Server connections per (database, role): several, so that transactions move between them; enough
# for the concurrency tests' simultaneous transactions plus the test's own.
POOL_SIZE = 8


def available() -> bool:
    return os.path.exists(PGBOUNCER)


@dataclass
class PgBouncer:
    directory: Path
    port: int
    server_host: str
    server_port: int
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, server_url: str, admin_user: str = "postgres") -> PgBouncer:
        server = make_url(server_url)
        directory = Path(tempfile.mkdtemp(prefix="crm_pgbouncer_"))
        bouncer = cls(directory, free_port(), server.host or "127.0.0.1", server.port or 5432)
        (directory / "users.txt").write_text(f'"{admin_user}" ""\n')
        (directory / "pgbouncer.ini").write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host={bouncer.server_host} port={bouncer.server_port}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {bouncer.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {directory / 'users.txt'}",
                    f"auth_user = {admin_user}",
                    "pool_mode = transaction",
                    f"default_pool_size = {POOL_SIZE}",
                    "max_client_conn = 500",
                    "server_round_robin = 1",
                    "ignore_startup_parameters = extra_float_digits,options",
                    f"logfile = {directory / 'pgbouncer.log'}",
                    "",
                ]
            )
        )
        bouncer.launch()
        return bouncer

    def launch(self) -> None:
        """Start pgbouncer (again, after `halt()`: same port and configuration) and wait until it listens."""
        directory = self.directory
        command = [PGBOUNCER, str(directory / "pgbouncer.ini")]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            user = pwd.getpwnam("postgres")
            os.chown(directory, user.pw_uid, user.pw_gid)
            for path in directory.iterdir():
                os.chown(path, user.pw_uid, user.pw_gid)
            command[1:1] = ["-u", "postgres"]
        command.insert(1, "-q")  # the log goes to the file only
        with open(directory / "stderr.txt", "wb") as errors:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {(directory / 'stderr.txt').read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("pgbouncer did not start listening")

    def url(self, url: str) -> str:
        """`url` (the test PostgreSQL's) through this pooler."""
        through: URL = make_url(url).set(host="127.0.0.1", port=self.port)
        return through.render_as_string(hide_password=False)

    def warm(self, url: str, connections: int = 4) -> None:
        """Open `connections` server connections for `url`'s database and role at once (simultaneous
        transactions), so that round robin has several to move a client's transactions between."""
        target = make_url(self.url(url))
        dsn = f"host=127.0.0.1 port={self.port} dbname={target.database} user={target.username}"
        ready = threading.Barrier(connections)

        def hold() -> None:
            with psycopg.connect(dsn, prepare_threshold=None) as connection:
                connection.execute("SELECT 1")
                ready.wait(timeout=10)  # all inside their transactions together: one server connection each

        threads = [threading.Thread(target=hold) for _ in range(connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text() if path.exists() else ""

    def halt(self) -> None:
        """Shut pgbouncer down at once, as a restart does (SIGTERM: every client connection is cut),
        keeping its directory for `launch()`."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # immediate shutdown
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
