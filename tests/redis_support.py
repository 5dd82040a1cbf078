"""A private redis-server that a test may stop, kill or pause without touching anyone else's Redis."""

from __future__ import annotations

import signal
import subprocess
import time

from tests.conftest import unavailable
from tests.net import free_port


class PrivateRedis:
    """A redis-server of our own, so it can be killed or paused without touching anyone else's."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 5
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    unavailable(f"a private redis-server on port {self.port}")
                time.sleep(0.05)
        client.close()

    def pause(self) -> None:
        """Hung, not dead: the kernel still accepts connections, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused process cannot die of SIGKILL until resumed
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None
