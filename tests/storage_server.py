"""moto's S3 server on loopback, started from the virtual environment for the storage tests.

The server runs in its own process (`moto_server -H 127.0.0.1 -p PORT`), so the tests talk to
it over HTTP with a real boto3 client exactly as the app talks to S3, and nothing in the test
process is patched. Its log goes to a file (a pipe nobody reads would fill up and stall it).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT = 30.0


class MotoUnavailable(RuntimeError):
    """moto's server is not installed or did not start; the message says which."""


class MotoServer:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.endpoint_url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _executable() -> Path | None:
    for folder in (Path(sys.executable).parent, Path(sys.prefix) / "bin"):
        candidate = folder / "moto_server"
        if candidate.is_file():
            return candidate
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def start(log_dir: Path, attempts: int = 3) -> MotoServer:
    """Start moto_server on a free loopback port and wait until it answers."""
    executable = _executable()
    if executable is None:
        raise MotoUnavailable(
            "moto's S3 server (moto_server) is not installed in this environment: "
            "pip install -e '.[test]'"
        )
    problem = ""
    for _ in range(attempts):  # another process may take the port between probe and bind
        port = _free_port()
        log = log_dir / f"moto-{port}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [str(executable), "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        server = MotoServer(process, port, log)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                problem = f"moto_server exited with status {process.returncode}: {_tail(log)}"
                break
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return server
            except OSError:
                time.sleep(0.05)
        else:
            problem = f"moto_server did not answer within {START_TIMEOUT:.0f} s: {_tail(log)}"
        server.stop()
    raise MotoUnavailable(problem)
