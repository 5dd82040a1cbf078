"""A private PostgreSQL primary and its streaming replica, for the read-replica tests.

`ReplicaPair.start()` makes a throw-away primary with Debian's `initdb` in a fresh directory on a free
loopback port (the machine's own PostgreSQL does not accept replication connections: its pg_hba.conf
has no `replication` line, and the tests must not change it), then the replica the way an operator
does: `pg_basebackup -R` from the running primary, started as a hot standby on another loopback port.
PostgreSQL refuses to run as root: as root (CI) every server command runs as the `postgres` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from crm_web.replica import REPLAYED
from tests.net import free_port


def _bin_dir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_basebackup"))
    return os.path.dirname(found[-1]) if found else None


BIN_DIR = _bin_dir()


def available() -> bool:
    return BIN_DIR is not None


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(path, user.pw_uid, user.pw_gid)


def _run(command: list[str]) -> None:
    done = subprocess.run(_as_server_user(command), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed: {done.stderr.strip() or done.stdout.strip()}")


# Fast and small: a test cluster, not a durable one.
_SERVER_SETTINGS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c shared_buffers=16MB "
    "-c max_connections=40 -c wal_level=replica -c max_wal_senders=4 -c hot_standby=on "
    "-c wal_receiver_status_interval=1s"
)


@dataclass
class ReplicaPair:
    directory: Path
    primary_port: int
    replica_port: int

    @property
    def primary_dir(self) -> Path:
        return self.directory / "primary"

    @property
    def replica_dir(self) -> Path:
        return self.directory / "replica"

    @classmethod
    def start(cls) -> ReplicaPair:
        assert BIN_DIR is not None
        directory = Path(tempfile.mkdtemp(prefix="crm_replica_"))
        _chown(directory)
        pair = cls(directory, free_port(), free_port())
        try:
            _run(
                [
                    f"{BIN_DIR}/initdb",
                    "-D",
                    str(pair.primary_dir),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]
            )
            pair._pg_ctl(pair.primary_dir, pair.primary_port, "start")
            _run(
                [
                    f"{BIN_DIR}/pg_basebackup",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(pair.primary_port),
                    "-U",
                    "postgres",
                    "-D",
                    str(pair.replica_dir),
                    "-R",
                    "-X",
                    "stream",
                    "--no-sync",
                    "-c",
                    "fast",
                ]
            )
            pair.start_replica()
        except Exception:
            pair.stop()
            raise
        return pair

    def _pg_ctl(self, data: Path, port: int, action: str) -> None:
        command = [f"{BIN_DIR}/pg_ctl", "-D", str(data), "-w", "-t", "30", action]
        if action == "start":
            command += ["-l", str(data / "server.log"), "-o", f"{_SERVER_SETTINGS} -c port={port} -k {data}"]
        else:
            command += ["-m", "fast"]
        _run(command)

    def start_replica(self) -> None:
        self._pg_ctl(self.replica_dir, self.replica_port, "start")
        self.wait_streaming()

    def stop_replica(self) -> None:
        self._pg_ctl(self.replica_dir, self.replica_port, "stop")

    def url(self, port: int, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"

    def primary_url(self, database: str = "postgres") -> str:
        return self.url(self.primary_port, database)

    def replica_url(self, database: str = "postgres") -> str:
        return self.url(self.replica_port, database)

    def execute(self, port: int, sql: str, database: str = "postgres") -> object:
        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname={database}", autocommit=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchone()[0] if cursor.description else None

    def wait_streaming(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.execute(self.replica_port, "SELECT count(*) FROM pg_stat_wal_receiver"):
                    return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not start streaming")
            time.sleep(0.05)

    def wait_replayed(self, timeout: float = 10) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        target = self.execute(self.primary_port, "SELECT pg_current_wal_lsn()::text")
        deadline = time.monotonic() + timeout
        replayed = REPLAYED.format(lsn=f"'{target}'::pg_lsn")
        while not self.execute(self.replica_port, f"SELECT {replayed}"):
            if time.monotonic() > deadline:
                log = (self.replica_dir / "server.log").read_text()[-2000:]
                raise RuntimeError(f"the replica did not catch up to {target}:\n{log}")
            time.sleep(0.02)

    def stop(self) -> None:
        for data in (self.replica_dir, self.primary_dir):
            if (data / "postmaster.pid").exists():
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    _run([f"{BIN_DIR}/pg_ctl", "-D", str(data), "-w", "-m", "immediate", "stop"])
        shutil.rmtree(self.directory, ignore_errors=True)
