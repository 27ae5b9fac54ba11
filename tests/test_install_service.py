"""`install.sh --service` and `--uninstall`, run for real into a temporary root (`--root DIR`):
the files land under DIR and the commands that would change this machine (apt-get, useradd,
systemctl, ...) are recorded in DIR/install-commands.log instead of being run. The service's
virtual environment is really created and notesight really installed into it (about 40 s here).
"""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "install.sh"
SHIPPED_CONFIG = ROOT / "config" / "notesight.toml"
UNIT = ROOT / "systemd" / "notesight.service"


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INSTALL), *args], cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


def manifest(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under root with its mode, size and modification time (ns)."""
    entries = {}
    for path in sorted(root.rglob("*")):
        if path.name == "install-commands.log":
            continue
        info = path.lstat()
        entries[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return entries


def commands(root: Path) -> list[str]:
    log = root / "install-commands.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck_clean() -> None:
    result = subprocess.run(
        ["shellcheck", "-x", "install.sh", "systemd/service-install.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--purge"], "--purge goes with --uninstall"),
        (["--mosquitto"], "--mosquitto goes with --service"),
        (["--root", "/tmp/x"], "--root goes with --service or --uninstall"),
        (["--service", "--root"], "--root needs a folder"),
    ],
)
def test_option_mistakes_exit_2(args: list[str], message: str) -> None:
    result = install(*args)
    assert result.returncode == 2
    assert message in result.stderr and "--help" in result.stderr


def test_help_lists_the_service_options() -> None:
    result = install("--help")
    for option in ("--service", "--uninstall", "--purge", "--mosquitto", "--root DIR"):
        assert option in result.stdout


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: sudo is not needed")
def test_service_without_root_says_to_use_sudo() -> None:
    result = install("--service")
    assert result.returncode == 1
    assert "sudo ./install.sh --service" in result.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("root")
    result = install("--service", "--mosquitto", "--root", str(root))
    assert result.returncode == 0, result.stdout + result.stderr
    return root, result


def test_service_install_puts_everything_in_place(installed) -> None:
    root, result = installed
    notesight = root / "opt/notesight/bin/notesight"
    run = subprocess.run([str(notesight), "check-config", str(SHIPPED_CONFIG)], capture_output=True)
    assert run.returncode == 0  # a real, working install, not a link into the checkout
    assert (root / "etc/notesight/config.toml").read_text() == SHIPPED_CONFIG.read_text()
    unit = root / "etc/systemd/system/notesight.service"
    assert unit.read_text() == UNIT.read_text()
    assert oct(unit.stat().st_mode & 0o777) == "0o644"
    log = commands(root)
    assert log[0].startswith("apt-get install ")
    assert any(
        c.startswith("useradd --system --user-group") and c.endswith(" notesight") for c in log
    )
    for group in ("audio", "gpio", "spi", "i2c"):
        try:
            grp.getgrnam(group)
        except KeyError:
            assert f"usermod -aG {group} notesight" not in log  # no such group: not joined
        else:
            assert f"usermod -aG {group} notesight" in log
    assert log[-4:] == [
        "systemctl daemon-reload",
        "systemctl enable notesight",
        "systemctl restart notesight",
        "systemctl enable --now mosquitto",
    ]
    assert "would run: systemctl restart notesight" in result.stdout


def test_a_second_run_changes_nothing(installed) -> None:
    root, _ = installed
    before = manifest(root)
    result = install("--service", "--root", str(root))
    assert result.returncode == 0, result.stderr
    assert manifest(root) == before
    assert "is up to date" in result.stdout  # the environment and the unit
    assert "kept as it is" in result.stdout


def test_the_config_is_never_overwritten_and_a_new_default_goes_beside_it(installed) -> None:
    root, _ = installed
    config = root / "etc/notesight/config.toml"
    record = root / "opt/notesight/share/config.default.toml"
    edited = config.read_text().replace('level = "info"', 'level = "warning"')
    assert edited != config.read_text()
    config.write_text(edited)  # the caretaker's edit
    record.write_text(record.read_text() + "# an older default\n")  # the default changed since
    result = install("--service", "--root", str(root))
    assert result.returncode == 0, result.stderr
    assert config.read_text() == edited
    assert (root / "etc/notesight/config.toml.new").read_text() == SHIPPED_CONFIG.read_text()
    assert "the default changed" in result.stdout
    again = install("--service", "--root", str(root))
    assert "kept as it is" in again.stdout  # told once, not at every run


def test_an_invalid_config_stops_the_install_with_the_reason(installed) -> None:
    root, _ = installed
    config = root / "etc/notesight/config.toml"
    good = config.read_text()
    config.write_text("[audio]\nsample_rate = 22050\n")
    try:
        result = install("--service", "--root", str(root))
    finally:
        config.write_text(good)
    assert result.returncode == 1
    assert "[audio].sample_rate: must be one of 44100, 48000 (got 22050)" in result.stderr
    assert f"fix {config}" in result.stderr


def test_uninstall_keeps_config_and_state_unless_purged(installed) -> None:
    root, _ = installed
    state = root / "var/lib/notesight"
    state.mkdir(parents=True)
    (state / "outbox.sqlite3").write_bytes(b"queued events")
    (root / "install-commands.log").unlink()
    result = install("--uninstall", "--root", str(root))
    assert result.returncode == 0, result.stderr
    assert not (root / "opt/notesight").exists()
    assert not (root / "etc/systemd/system/notesight.service").exists()
    assert (root / "etc/notesight/config.toml").exists()
    assert (state / "outbox.sqlite3").read_bytes() == b"queued events"
    assert commands(root)[:2] == ["systemctl disable --now notesight", "systemctl daemon-reload"]
    purged = install("--uninstall", "--purge", "--root", str(root))
    assert purged.returncode == 0, purged.stderr
    assert not (root / "etc/notesight").exists() and not state.exists()
