"""install.sh and .ci/run: syntax, option handling, and that CI runs the README's test command.

These never install anything: only --help and bad options are run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "install.sh"
TEST_COMMAND = "./install.sh --dev && .venv/bin/python -m pytest -q"
DEMO_COMMAND = "./install.sh && .venv/bin/notesight demo"

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INSTALL), *args], cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


@needs_bash
@pytest.mark.parametrize("script", ["install.sh", ".ci/run"])
def test_scripts_parse_and_are_executable(script):
    path = ROOT / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    subprocess.run(["bash", "-n", str(path)], check=True)
    assert "set -euo pipefail" in path.read_text()


@needs_bash
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag):
    result = run(flag)
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: ./install.sh")
    assert "--dev" in result.stdout


@needs_bash
@pytest.mark.parametrize("arg", ["--bogus", "-x", "extra"])
def test_unknown_option_exits_2_with_a_message(arg):
    result = run("--dev", arg)
    assert result.returncode == 2
    assert f"'{arg}'" in result.stderr
    assert "--help" in result.stderr
    assert result.stdout == ""


def test_ci_runs_exactly_the_readme_test_command():
    commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[-1] == TEST_COMMAND
    assert all(c.startswith(("set ", "cd ")) for c in commands[:-1])
    readme = (ROOT / "README.md").read_text()
    assert TEST_COMMAND in readme
    assert DEMO_COMMAND in readme
