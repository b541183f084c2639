"""The embedded MQTT broker: a private mosquitto in a folder CIM owns, beside the embedded
PostgreSQL, for SensorThings' MQTT extension (unless `CIM_MQTT_URL` names a broker).

It has two listeners, so that a subscriber only ever sees what CIM stored (with its @iot.id),
never a device's raw message on the same topic:
- the public one, where anyone may subscribe to `v1.1/#` without credentials but not publish,
  and CIM itself logs in as `cim-service` to publish what it stored and to read `devices/#`;
- the device one, mounted under `devices/`, where each device logs in with the key CIM issued
  and may publish only to `v1.1/Datastreams(N)/Observations` of its own Datastreams.

mosquitto 2.0 checks a mounted listener's access list against the mounted topic, so the device
lists name `devices/v1.1/…`; `per_listener_settings` gives each listener its own password and
access files, so a device's key does not open the public listener either. The files are written
again (atomically) whenever keys change, and the broker reloads them on SIGHUP, dropping the
connections of keys that no longer exist. Started as root, mosquitto runs as the `mosquitto`
account, which owns the folder; persistence is off: the data is kept in PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cim.errors import CimError, InvalidInput

if TYPE_CHECKING:
    from cim.settings import TwinSettings

SERVICE_USER = "cim-service"
DEVICE_MOUNT = "devices/"
TOPIC_ROOT = "v1.1"
ACCOUNT = "mosquitto"  # the account Debian's mosquitto drops to when started as root
_INSTALL_HINT = (
    "install it (Debian/Ubuntu: apt-get install mosquitto), or set CIM_MQTT_URL to an "
    "existing MQTT broker"
)
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,128}$")
_B64 = r"[A-Za-z0-9+/]+={0,2}"
_HASH = re.compile(rf"^(\$7\$[0-9]+\${_B64}\${_B64}|\$6\${_B64}\${_B64})$")
_RELOADED = b"Reloading config."


class BrokerUnavailable(CimError):
    """The embedded MQTT broker cannot be started, stopped or reloaded."""


@dataclass(frozen=True)
class DeviceAccess:
    """What one device key may do on the device listener: publish Observations of these
    Datastreams (of every one with `every`: a manager's key), logging in as `username` with the
    password `password_hash` was made from.

    A manager is granted one wildcard topic, not a line per Datastream: mosquitto checks a
    publish against its user's access list line by line, and a list of 10,000 Datastreams cost
    it a millisecond a message."""

    username: str
    password_hash: str
    datastreams: tuple[int, ...]
    every: bool = False


def hash_password(password: str, iterations: int = 101) -> str:
    """mosquitto 2.0's own password hash (`$7$`: PBKDF2-HMAC-SHA512, a 12-byte salt, 64 bytes),
    so that CIM can write the password file itself without running mosquitto_passwd."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def mosquitto_binary() -> str:
    """The mosquitto executable (Debian puts it in /usr/sbin, often not on a user's PATH).

    Raises:
        BrokerUnavailable: not installed.
    """
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    raise BrokerUnavailable(f"mosquitto not found: {_INSTALL_HINT}")


def _as_root() -> bool:
    return os.geteuid() == 0


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie has ended: it is reaped here when it is our child)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def _check_devices(devices: list[DeviceAccess]) -> None:
    """Refuse what could not be written into mosquitto's files as one line each."""
    seen: set[str] = set()
    for device in devices:
        if not _USERNAME.match(device.username) or device.username == SERVICE_USER:
            raise InvalidInput(
                f"MQTT user name {device.username!r}: letters, digits and . _ @ - only "
                f"(and not {SERVICE_USER!r})"
            )
        if device.username in seen:
            raise InvalidInput(f"MQTT user {device.username!r} is given twice")
        seen.add(device.username)
        if not _HASH.match(device.password_hash):
            raise InvalidInput(
                f"MQTT user {device.username!r}: the password hash is not mosquitto's "
                "($7$iterations$salt$hash)"
            )
        for n in device.datastreams:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise InvalidInput(f"MQTT user {device.username!r}: Datastream id {n!r}")


def _grants(device: DeviceAccess) -> str:
    """The topics a device key may publish to, as access-list lines."""
    if device.every:  # the Datastream is in the topic or the body; the bridge reads either
        return (
            f"topic write {DEVICE_MOUNT}{TOPIC_ROOT}/+/Observations\n"
            f"topic write {DEVICE_MOUNT}{TOPIC_ROOT}/Observations\n"
        )
    return "".join(
        f"topic write {DEVICE_MOUNT}{TOPIC_ROOT}/Datastreams({n})/Observations\n"
        for n in sorted(set(device.datastreams))
    )


@dataclass
class LocalBroker:
    """A mosquitto in `root` with its public listener on `host`:`port` and its device listener
    on `host`:`device_port`."""

    root: Path
    port: int = 18830
    device_port: int = 18831
    host: str = "127.0.0.1"
    _process: subprocess.Popen[bytes] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    # --- where things are

    @property
    def config_file(self) -> Path:
        return self.root / "mosquitto.conf"

    @property
    def pid_file(self) -> Path:
        return self.root / "mosquitto.pid"

    @property
    def logfile(self) -> Path:
        return self.root / "mosquitto.log"

    @property
    def output_file(self) -> Path:
        """What mosquitto says before its log is open (a bad option, a port in use)."""
        return self.root / "mosquitto.out"

    @property
    def service_password_file(self) -> Path:
        return self.root / "service-password"

    def _url(self, port: int) -> str:
        host = self._probe_host()
        return f"mqtt://[{host}]:{port}" if ":" in host else f"mqtt://{host}:{port}"

    @property
    def public_url(self) -> str:
        """Where subscribers (and CIM itself, as cim-service) connect."""
        return self._url(self.port)

    @property
    def device_url(self) -> str:
        """Where devices publish their Observations with their keys."""
        return self._url(self.device_port)

    def _probe_host(self) -> str:
        """The address to reach a listener at: a wildcard listens on loopback too."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)

    # --- files

    def _account(self) -> pwd.struct_passwd | None:
        """The account mosquitto runs as when CIM runs as root; None otherwise."""
        if not _as_root():
            return None
        try:
            return pwd.getpwnam(ACCOUNT)
        except KeyError:
            raise BrokerUnavailable(
                f"no {ACCOUNT!r} system account to run the broker as: {_INSTALL_HINT}"
            ) from None

    def _give(self, path: Path) -> None:
        """Make `path` the broker's (it reads its files and writes its pid and log as itself)."""
        account = self._account()
        if account is not None:
            os.chown(path, account.pw_uid, account.pw_gid)

    def _prepare_folder(self) -> None:
        """Create the folder, the broker's own, and check that the broker can reach it.

        Raises:
            BrokerUnavailable: the `mosquitto` account cannot enter a folder above it.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self._give(self.root)
        account = self._account()
        if account is None:
            return
        groups = {account.pw_gid, *os.getgrouplist(account.pw_name, account.pw_gid)}
        for parent in self.root.resolve().parents:
            st = parent.stat()
            if st.st_uid == account.pw_uid:
                bit = stat.S_IXUSR
            elif st.st_gid in groups:
                bit = stat.S_IXGRP
            else:
                bit = stat.S_IXOTH
            if not st.st_mode & bit:
                raise BrokerUnavailable(
                    f"the {ACCOUNT!r} account the broker runs as cannot enter {parent}: "
                    f"chmod o+x {parent}, or set CIM_DATA_DIR to a folder it can reach"
                )

    def _write(self, path: Path, content: str, broker_reads: bool = True) -> None:
        """Replace `path` at once (temp file + rename), readable by its owner only."""
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=self.root)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(content)
            os.chmod(tmp, 0o600)
            if broker_reads:
                self._give(Path(tmp))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _config(self) -> str:
        account = self._account()
        folder = self.root.resolve()
        public = f"{self.port} {self.host}".strip()
        device = f"{self.device_port} {self.host}".strip()
        return "\n".join(
            [
                "# CIM's embedded MQTT broker, written by `cim mqtt start` from the settings",
                "# (CIM_MQTT_PORT, CIM_MQTT_DEVICE_PORT, CIM_MQTT_HOST); delete this file to",
                "# have it written again. The passwd and acl files are CIM's: it rewrites them",
                "# whenever keys change (cim twin keys).",
                "per_listener_settings true",
                "persistence false",
                # the bridge takes every device message at QoS 1: room for bursts of them
                # (20 in flight and 1,000 queued per client are mosquitto's defaults)
                "max_inflight_messages 1000",
                "max_queued_messages 200000",
                *([f"user {account.pw_name}"] if account else []),
                f"pid_file {folder / 'mosquitto.pid'}",
                f"log_dest file {folder / 'mosquitto.log'}",
                # `information` holds the reload line write_access waits for
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                "",
                "# public: anyone reads v1.1/#, only cim-service writes (public.acl)",
                f"listener {public}",
                "allow_anonymous true",
                f"password_file {folder / 'public.passwd'}",
                f"acl_file {folder / 'public.acl'}",
                "",
                "# devices: keys CIM issued, each its Datastreams' Observations (devices.acl)",
                f"listener {device}",
                f"mount_point {DEVICE_MOUNT}",
                "allow_anonymous false",
                f"password_file {folder / 'devices.passwd'}",
                f"acl_file {folder / 'devices.acl'}",
                "",
            ]
        )

    def _check_config(self) -> None:
        """Refuse to start a kept mosquitto.conf whose listeners are not the settings' ones
        (the wait for the ports would otherwise time out with no reason given)."""
        found = set(
            re.findall(r"^\s*listener\s+(\d+)(?:[ \t]+(\S+))?", self.config_file.read_text(), re.M)
        )
        for port in (self.port, self.device_port):
            if (str(port), self.host) not in found:
                raise BrokerUnavailable(
                    f"{self.config_file} has no `listener {port} {self.host}`: it was written "
                    "for other ports or another address; delete it to have it written again "
                    "from the settings"
                )

    def service_credentials(self) -> tuple[str, str]:
        """(user, password) CIM's own service logs in with on the public listener; the
        password is made on first use and kept in the folder, readable by CIM only."""
        if not self.service_password_file.exists():
            self._prepare_folder()
            self._write(self.service_password_file, secrets.token_urlsafe(24), False)
        return SERVICE_USER, self.service_password_file.read_text().strip()

    def _write_public(self) -> None:
        _, password = self.service_credentials()
        self._write(self.root / "public.passwd", f"{SERVICE_USER}:{hash_password(password)}\n")
        self._write(
            self.root / "public.acl",
            "# anonymous clients: read only\n"
            f"topic read {TOPIC_ROOT}/#\n\n"
            f"user {SERVICE_USER}\n"
            f"topic readwrite {TOPIC_ROOT}/#\n"
            f"topic read {DEVICE_MOUNT}#\n",
        )

    def write_access(self, devices: Iterable[DeviceAccess]) -> None:
        """Write the password and access files from `devices` (and cim-service), and have a
        running broker reload them: a device left out is disconnected and refused from then
        on, without a restart. Returns once the broker has reloaded.

        Raises:
            InvalidInput: a user name, hash or Datastream id that cannot be written.
            BrokerUnavailable: the broker did not reload.
        """
        devices = list(devices)
        _check_devices(devices)
        self._prepare_folder()
        self._write_public()
        passwd = "".join(f"{d.username}:{d.password_hash}\n" for d in devices)
        acl = "".join(f"user {d.username}\n{_grants(d)}\n" for d in devices)
        self._write(self.root / "devices.passwd", passwd)
        self._write(self.root / "devices.acl", acl or "# no device keys\n")
        self.reload()

    # --- the process

    def pid(self) -> int | None:
        """The pid of this folder's running mosquitto, or None (a stale pid file is ignored)."""
        if self._process is not None and self._process.poll() is not None:
            self._process = None
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return self._process.pid if self._process is not None else None
        if not _process_alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        # a pid reused by another program is not our broker
        if str(self.config_file).encode() not in cmdline:
            return None
        return pid

    def is_running(self) -> bool:
        """True when this folder's broker is up."""
        return self.pid() is not None

    def start(self, timeout: float = 10) -> None:
        """Start the broker (writing its files on first use) and wait until both listeners
        accept connections; nothing happens when it runs already.

        Raises:
            BrokerUnavailable: mosquitto is missing, a port is taken, or it did not start.
        """
        if self.is_running():
            return
        binary = mosquitto_binary()
        self._prepare_folder()
        if self.config_file.exists():
            self._check_config()
        else:
            self._write(self.config_file, self._config())
        self._write_public()
        for name in ("devices.passwd", "devices.acl"):
            if not (self.root / name).exists():
                self._write(self.root / name, "")
        host = self._probe_host()
        for port in (self.port, self.device_port):
            if _accepts(host, port):
                raise BrokerUnavailable(
                    f"port {port} on {self.host} is in use by another program: choose free "
                    "ones with CIM_MQTT_PORT and CIM_MQTT_DEVICE_PORT"
                )
        self.pid_file.unlink(missing_ok=True)
        log_from = self.logfile.stat().st_size if self.logfile.exists() else 0
        with open(self.output_file, "wb") as out:
            # its own session: a Ctrl-C at the terminal that started it does not stop it
            self._process = subprocess.Popen(
                [binary, "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            code = self._process.poll()
            if code is not None:
                self._process = None
                raise BrokerUnavailable(
                    f"mosquitto stopped at start (exit status {code}): {self._last_words(log_from)}"
                )
            if self.pid_file.exists() and all(
                _accepts(host, p) for p in (self.port, self.device_port)
            ):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerUnavailable(
                    f"mosquitto did not listen on ports {self.port} and {self.device_port} "
                    f"within {timeout:g} s: {self._last_words(log_from)}"
                )
            time.sleep(0.02)

    def _last_words(self, log_from: int) -> str:
        """What mosquitto wrote since this start (its output, then its log from `log_from`),
        the last lines, for an error message."""
        lines = self.output_file.read_text(errors="replace").strip().splitlines()
        try:
            with open(self.logfile, "rb") as log:
                log.seek(log_from)
                lines += log.read().decode(errors="replace").strip().splitlines()
        except OSError:
            pass
        return " | ".join(lines[-4:]) or f"nothing in {self.output_file} or {self.logfile}"

    def reload(self, timeout: float = 5) -> None:
        """Have a running broker read its password and access files again, and wait until it
        has (its log says so), so that what the caller revoked is refused on return.

        Raises:
            BrokerUnavailable: it did not reload within `timeout`.
        """
        pid = self.pid()
        if pid is None:
            return
        try:
            offset = self.logfile.stat().st_size
        except OSError:
            offset = 0
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(self.logfile, "rb") as log:
                    log.seek(offset)
                    if _RELOADED in log.read():
                        return
            except OSError:
                pass
            time.sleep(0.01)
        raise BrokerUnavailable(
            f"the broker (pid {pid}) did not reload its access files within {timeout:g} s: "
            f"see {self.logfile}"
        )

    def stop(self, timeout: float = 10) -> None:
        """Stop the broker if it runs; returns once it has ended (its ports are free).

        Raises:
            BrokerUnavailable: it would not end, even killed.
        """
        pid = self.pid()
        if pid is None:
            self._process = None
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while _process_alive(pid) and time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    break
                time.sleep(0.02)
            if not _process_alive(pid):
                break
        else:
            raise BrokerUnavailable(f"the broker (pid {pid}) would not stop")
        if self._process is not None:
            self._process.wait(timeout=1)
            self._process = None
        self.pid_file.unlink(missing_ok=True)

    def status(self) -> dict[str, Any]:
        """What `cim mqtt status` shows: whether it runs, its pid, its URLs and its folder."""
        pid = self.pid()
        return {
            "running": pid is not None,
            "pid": pid,
            "public_url": self.public_url,
            "device_url": self.device_url,
            "folder": str(self.root),
            "log": str(self.logfile),
        }


def broker_from_settings(settings: TwinSettings) -> LocalBroker | None:
    """The embedded broker these settings describe; None when CIM_MQTT_URL names another."""
    if settings.mqtt_url:
        return None
    return LocalBroker(
        settings.data_dir / "mqtt",
        settings.mqtt_port,
        settings.mqtt_device_port,
        settings.mqtt_host,
    )
