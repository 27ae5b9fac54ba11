"""A real mosquitto broker for the tests, and a recording subscriber.

`Broker` runs /usr/sbin/mosquitto (Debian package `mosquitto`, installed by install.sh) with its
own config in a temporary folder, on a free port of 127.0.0.1: anonymous, or with a password
file, or with TLS (a CA and a server certificate made with the openssl command). It can be
killed (SIGKILL, like a crash or a power cut of the broker's machine) and started again on the
same port, and asked to save its persistence database (SIGUSR1) so that a subscriber's session
survives the kill.

`Recorder` is a subscriber that keeps every message it gets, with a persistent session and
QoS 0 subscriptions, so that messages published while it is away are queued for it by the
broker (queue_qos0_messages) and no PUBACK of its own can be caught unread in a killed broker's
socket.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
# A generous guard for things that take milliseconds (a broker starting, messages arriving):
# reaching it means something is broken, and the test fails with what it saw.
PATIENCE_S = 30.0


def wait_for(condition: Callable[[], bool], what: str, patience_s: float = PATIENCE_S) -> None:
    end = time.monotonic() + patience_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_available() -> bool:
    return Path(MOSQUITTO).is_file() and os.access(MOSQUITTO, os.X_OK)


# ---------------------------------------------------------------------------------------------
# Certificates (openssl command: no Python crypto library needed)
# ---------------------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    subject = f"/CN={name}"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
             "-keyout", str(key), "-out", str(cert), cwd=folder)  # fmt: skip
    return cert, key


def make_server_cert(
    folder: Path, ca: tuple[Path, Path], name: str = "server"
) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1 signed by `ca`: (certificate, key). The same
    serves as a client certificate."""
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.crt"
    ext = folder / f"{name}.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", str(key), "-out", str(csr), cwd=folder)  # fmt: skip
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert),
             cwd=folder)  # fmt: skip
    return cert, key


# ---------------------------------------------------------------------------------------------
# The broker
# ---------------------------------------------------------------------------------------------


@dataclass
class Broker:
    folder: Path
    port: int = field(default_factory=free_port)
    users: dict[str, str] = field(default_factory=dict)  # empty: anonymous
    tls: tuple[Path, Path, Path] | None = None  # (ca cert, server cert, server key)
    require_client_cert: bool = False  # clients need a certificate signed by the CA
    process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / "mosquitto.log"

    @property
    def db_path(self) -> Path:
        return self.folder / "mosquitto.db"

    def _write_config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        lines = [
            # Started as root, mosquitto would switch to user "mosquitto", who cannot write to
            # the test's private folder; as another user this line changes nothing.
            f"user {getpass.getuser()}",
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.folder}/",
            "persistence_file mosquitto.db",
            "autosave_interval 3600",
            "queue_qos0_messages true",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            f"log_dest file {self.log_path}",
            "log_type all",
        ]
        if self.users:
            pw = self.folder / "passwd"
            pw.write_text("")
            for user, password in self.users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw), user, password], check=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls is not None:
            ca, cert, key = self.tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
            if self.require_client_cert:
                lines.append("require_certificate true")
        conf = self.folder / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> Broker:
        conf = self._write_config()
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_for(self._listening, f"mosquitto on port {self.port}: {self.tail()}")
        return self

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            err = self.process.stderr.read().decode() if self.process.stderr else ""
            raise AssertionError(f"mosquitto exited: {err} {self.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a word (no will, no saved state)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        """SIGTERM: a clean stop (persistence saved). mosquitto 2.0.11 once lost a SIGTERM
        sent just after two clients closed (the suite hung in wait(); a second SIGTERM ended
        it at once), so it is sent again every second, and the broker killed (an error) if
        it still runs after PATIENCE_S."""
        if self.process is not None and self.process.poll() is None:
            deadline = time.monotonic() + PATIENCE_S
            while True:
                self.process.terminate()
                try:
                    self.process.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        self.kill()
                        raise AssertionError(f"mosquitto ignored SIGTERM: {self.tail()}") from None
        self.process = None

    def save(self) -> None:
        """Ask mosquitto to write its persistence database now (SIGUSR1) and wait for it."""
        assert self.process is not None
        before = self.db_path.stat().st_mtime_ns if self.db_path.exists() else 0
        self.process.send_signal(signal.SIGUSR1)
        wait_for(
            lambda: self.db_path.exists() and self.db_path.stat().st_mtime_ns != before,
            "mosquitto to save its database",
        )

    def tail(self) -> str:
        try:
            return self.log_path.read_text()[-2000:]
        except OSError:
            return ""


# ---------------------------------------------------------------------------------------------
# A subscriber that records
# ---------------------------------------------------------------------------------------------


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> dict:
        return json.loads(self.payload)


class Recorder:
    """Subscribes to `topics` (QoS 0, persistent session) and keeps every message."""

    def __init__(
        self,
        broker: Broker,
        topics: list[str],
        client_id: str = "test-recorder",
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        client_cert: tuple[Path, Path] | None = None,
    ) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self.topics = topics
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            cert, key = client_cert or (None, None)
            self.client.tls_set(ca_certs=str(ca_file), certfile=cert, keyfile=key)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.reconnect_delay_set(0.05, 0.2)
        self.broker = broker

    def __enter__(self) -> Recorder:
        self.client.connect("127.0.0.1", self.broker.port, keepalive=30)
        self.client.loop_start()
        wait_for(self.subscribed.is_set, "the recorder's subscription")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if not reason.is_failure:
            client.subscribe([(topic, 0) for topic in self.topics])

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, bytes(message.payload), message.retain))

    def on(self, suffix: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic.endswith(suffix)]

    def events(self) -> list[dict]:
        """Every event payload received (JSON with a seq), in arrival order."""
        with self._lock:
            messages = list(self.messages)
        out = []
        for m in messages:
            if m.topic.rsplit("/", 1)[-1] in ("note", "chord", "level", "alert", "session",
                                                "health"):  # fmt: skip
                out.append(m.json())
        return out
