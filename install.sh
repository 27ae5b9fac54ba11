#!/usr/bin/env bash
# Install notesight into this checkout: Debian packages, then a virtual environment in .venv.
#
#   ./install.sh          system packages + .venv with notesight (editable)
#   ./install.sh --dev    the same, plus the development tools (pytest, ruff, mir_eval, scipy)
#   sudo ./install.sh --service     the same, plus notesight as a systemd service
#                                   (systemd/service-install.sh has the steps)
#   sudo ./install.sh --uninstall   remove the service again (config and state are kept)
#   ./install.sh --help
#
# Safe to run again: packages already installed are skipped, and an existing .venv is reused.
# Run as root or as a user with sudo; sudo is used for apt-get only, and .venv belongs to
# whoever runs this script.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: ./install.sh [--dev] [--help]
       sudo ./install.sh --service [--mosquitto] [--root DIR]
       sudo ./install.sh --uninstall [--purge] [--root DIR]

Installs notesight on Debian or Raspberry Pi OS (bookworm or later):
  1. the Debian packages it needs (apt-get; only those missing; sudo when not root)
  2. a Python virtual environment in .venv in this checkout, with notesight installed
     in editable mode (pip install -e .)

Options:
  --dev     also install the development tools: pip install -e '.[dev]'
  --service
            also run notesight as a system service: a user 'notesight' (groups audio,
            gpio, spi, i2c), notesight in /opt/notesight, the config in
            /etc/notesight/config.toml (never overwritten; a changed default goes to
            config.toml.new), SPI and I2C enabled on a Raspberry Pi, and the unit
            notesight.service installed, enabled and started
  --mosquitto
            with --service: also enable and start the local mosquitto MQTT broker
  --uninstall
            remove the service, /opt/notesight and the user; keeps /etc/notesight and
            /var/lib/notesight
  --purge   with --uninstall: remove /etc/notesight and /var/lib/notesight too
  --root DIR
            with --service or --uninstall: work inside DIR instead of / (packaging,
            tests); system commands are printed, not run
  -h, --help
            show this help and exit

Afterwards:  .venv/bin/notesight demo
EOF
}

# Debian packages notesight needs, one per line with what for.
APT_PACKAGES=(
    portaudio19-dev             # PortAudio headers: builds the pyaudio wheel (microphone input)
    libsndfile1                 # audio file reading (soundfile)
    python3-venv                # python3 -m venv
    python3-dev                 # Python headers for building C extensions
    gcc                         # compiler for those extensions
    fluidsynth                  # renders MIDI to audio for tests and the demo
    fluid-soundfont-gm          # General MIDI piano sound fonts for fluidsynth
    csound-soundfont            # a third training piano for models/train_notes.py
    timgm6mb-soundfont
    musescore-general-soundfont
    timidity                    # with freepats: another piano (other samples, another synth)...
    freepats                    # ...for the listening tests (tests/timidity.py)
    mosquitto                   # MQTT broker (its service may start on install; not relied on)
    openssl                     # makes the CA and certificates of the MQTT TLS tests
    ffmpeg                      # decoding mp3 and other compressed audio
    espeak-ng                   # synthesized speech for the alert classifier's training and tests
)
MIN_PYTHON="3.11"

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'install.sh: %s\n' "$*" >&2
    exit 1
}

# ---- options ------------------------------------------------------------------------------
# Each option sets a variable here; the steps at the bottom read them. To add an option, add a
# variable, a case branch and a line in usage().
WANT_DEV=0
MODE=checkout # checkout | service | uninstall
WANT_MOSQUITTO=0
WANT_PURGE=0
ROOT=""

parse_args() {
    while (($# > 0)); do
        case "$1" in
            --dev) WANT_DEV=1 ;;
            --service) MODE=service ;;
            --uninstall) MODE=uninstall ;;
            --mosquitto) WANT_MOSQUITTO=1 ;;
            --purge) WANT_PURGE=1 ;;
            --root)
                (($# > 1)) || usage_error "--root needs a folder: --root DIR"
                ROOT=$(realpath -m -- "$2")
                [[ $ROOT != / ]] || ROOT=""
                shift
                ;;
            -h | --help)
                usage
                exit 0
                ;;
            -*)
                printf "install.sh: unknown option '%s'\n" "$1" >&2
                printf "Run './install.sh --help' to see the options.\n" >&2
                exit 2
                ;;
            *)
                printf "install.sh: unexpected argument '%s' (it takes options only)\n" "$1" >&2
                printf "Run './install.sh --help' to see the options.\n" >&2
                exit 2
                ;;
        esac
        shift
    done
    if [[ $MODE != service ]] && ((WANT_MOSQUITTO)); then usage_error "--mosquitto goes with --service"; fi
    if [[ $MODE != uninstall ]] && ((WANT_PURGE)); then usage_error "--purge goes with --uninstall"; fi
    if [[ $MODE == checkout && -n $ROOT ]]; then usage_error "--root goes with --service or --uninstall"; fi
}

usage_error() {
    printf 'install.sh: %s\n' "$1" >&2
    printf "Run './install.sh --help' to see the options.\n" >&2
    exit 2
}

# ---- steps --------------------------------------------------------------------------------
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to install system packages: run this script as root, or install sudo"
    fi
}

is_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

install_apt_packages() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: notesight installs on Debian or Raspberry Pi OS"
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        say "system packages: all ${#APT_PACKAGES[@]} already installed"
        return
    fi
    say "system packages: installing ${missing[*]}"
    # noninteractive: no debconf questions (CI has no TTY); wait for a running apt/unattended-upgrade.
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300)
    as_root "${apt[@]}" update
    as_root "${apt[@]}" install "${missing[@]}"
}

python_ok() { # $1: a python executable; true if it runs and is at least MIN_PYTHON
    "$1" -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$MIN_PYTHON'.split('.'))))" \
        >/dev/null 2>&1
}

make_venv() {
    if [[ -x .venv/bin/python ]] && python_ok .venv/bin/python; then
        say "virtual environment: reusing .venv ($(.venv/bin/python -V 2>&1))"
        return
    fi
    command -v python3 >/dev/null 2>&1 || die "python3 not found; install python3 (>= $MIN_PYTHON)"
    python_ok python3 || die "python3 is $(python3 -V 2>&1); notesight needs Python $MIN_PYTHON or newer (Debian bookworm or later)"
    if [[ -e .venv ]]; then
        say "virtual environment: .venv is broken or too old; recreating it"
        python3 -m venv --clear .venv
    else
        say "virtual environment: creating .venv ($(python3 -V 2>&1))"
        python3 -m venv .venv
    fi
}

pip_install() {
    local target="."
    if ((WANT_DEV)); then target=".[dev]"; fi
    say "python packages: pip install -e '$target'"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$target"
}

main() {
    parse_args "$@"
    cd "$(dirname "${BASH_SOURCE[0]}")"
    # shellcheck source=systemd/service-install.sh
    source systemd/service-install.sh
    if [[ $MODE == uninstall ]]; then
        uninstall_service
        return
    fi
    if [[ -z $ROOT ]]; then # with --root, nothing outside DIR changes: not even .venv
        if [[ $MODE == service ]]; then require_root_for_service --service; fi
        install_apt_packages
        make_venv
        pip_install
        if [[ $MODE == service && -n ${SUDO_USER:-} ]]; then
            chown -R "$(stat -c %u:%g .)" .venv # run with sudo: .venv stays the checkout owner's
        fi
        say "done: try .venv/bin/notesight demo"
    fi
    if [[ $MODE == service ]]; then install_service; fi
}

main "$@"
