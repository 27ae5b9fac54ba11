# shellcheck shell=bash
# The service part of install.sh (sourced by it; not run on its own):
#
#   sudo ./install.sh --service      notesight as a systemd service
#   sudo ./install.sh --uninstall    remove it again (config and state are kept; --purge too)
#
# What --service adds, each step skipped when it is already so (a second run changes nothing):
#   - a system user `notesight` in the groups audio, gpio, spi, i2c (those that exist)
#   - a virtual environment in /opt/notesight with notesight installed (not editable: the
#     service does not depend on this checkout); reinstalled only when the sources changed
#   - /etc/notesight/config.toml from config/notesight.toml when it is absent; never
#     overwritten: when the shipped default changed since the last install, the new default
#     is put beside it as config.toml.new
#   - SPI and I2C enabled with raspi-config (on a Raspberry Pi only)
#   - /etc/systemd/system/notesight.service, enabled and (re)started
#   - with --mosquitto: the local mosquitto broker enabled and started
#
# --root DIR installs into DIR instead of / (packaging, tests): files go under DIR, and the
# commands that would change the running system (apt-get, useradd, usermod, raspi-config,
# systemctl) are printed as "would run: ..." and appended to DIR/install-commands.log instead.
#
# Expects from install.sh: say, die, as_root, install_apt_packages, python_ok, MIN_PYTHON,
# and the option variables ROOT, WANT_MOSQUITTO, WANT_PURGE.

SERVICE_USER=notesight
SERVICE_GROUPS=(audio gpio spi i2c)

service_paths() {
    OPT_DIR="$ROOT/opt/notesight"
    ETC_DIR="$ROOT/etc/notesight"
    STATE_DIR="$ROOT/var/lib/notesight"
    UNIT_FILE="$ROOT/etc/systemd/system/notesight.service"
    # The default config last installed, to tell whether the shipped default changed since.
    DEFAULT_RECORD="$OPT_DIR/share/config.default.toml"
    SOURCE_STAMP="$OPT_DIR/share/source.sha256"
}

# A command that changes the running system: run it (as root), or with --root only record it.
system_run() {
    if [[ -n $ROOT ]]; then
        say "would run: $*"
        printf '%s\n' "$*" >>"$ROOT/install-commands.log"
    else
        as_root "$@"
    fi
}

have_systemd() { [[ -z $ROOT && -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; }

is_raspberry_pi() {
    [[ -r /proc/device-tree/model ]] && tr -d '\0' </proc/device-tree/model | grep -q 'Raspberry Pi'
}

require_root_for_service() {
    if [[ -z $ROOT && $(id -u) -ne 0 ]]; then
        die "the service is installed system-wide: run it with sudo (sudo ./install.sh $1)"
    fi
}

# ---- the system user -------------------------------------------------------------------------
service_user() {
    if getent passwd "$SERVICE_USER" >/dev/null; then
        say "user: $SERVICE_USER exists"
    else
        say "user: creating system user $SERVICE_USER"
        system_run useradd --system --user-group --no-create-home --home-dir /var/lib/notesight \
            --shell /usr/sbin/nologin --comment "notesight daemon" "$SERVICE_USER"
    fi
    local group
    for group in "${SERVICE_GROUPS[@]}"; do
        getent group "$group" >/dev/null || continue # no such group here (not a Pi): nothing to join
        if id -nG "$SERVICE_USER" 2>/dev/null | tr ' ' '\n' | grep -qx "$group"; then
            continue
        fi
        say "user: adding $SERVICE_USER to group $group"
        system_run usermod -aG "$group" "$SERVICE_USER"
    done
}

# ---- the virtual environment in /opt ---------------------------------------------------------
source_digest() { # what gets installed: sources, metadata, models, and the extras asked for
    {
        printf 'extras=%s\n' "$1"
        find pyproject.toml dsp device models -type f \
            \( -name '*.py' -o -name '*.toml' -o -name '*.tflite' -o -name '*.md' -o -name '*.json' \) \
            -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum
    } | sha256sum | cut -d' ' -f1
}

service_venv() {
    local extras="" digest
    if is_raspberry_pi; then extras="[pi]"; fi
    digest=$(source_digest "$extras")
    if [[ -x $OPT_DIR/bin/python ]] && python_ok "$OPT_DIR/bin/python" &&
        [[ -f $SOURCE_STAMP && $(cat "$SOURCE_STAMP") == "$digest" ]]; then
        say "service environment: $OPT_DIR is up to date"
        return
    fi
    command -v python3 >/dev/null 2>&1 || die "python3 not found; install python3 (>= $MIN_PYTHON)"
    if [[ ! -x $OPT_DIR/bin/python ]] || ! python_ok "$OPT_DIR/bin/python"; then
        say "service environment: creating $OPT_DIR"
        mkdir -p "$(dirname "$OPT_DIR")"
        python3 -m venv --clear "$OPT_DIR"
    fi
    say "service environment: pip install '.$extras' into $OPT_DIR"
    "$OPT_DIR/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade ".$extras"
    mkdir -p "$(dirname "$SOURCE_STAMP")"
    printf '%s\n' "$digest" >"$SOURCE_STAMP"
    SERVICE_CHANGED=1
}

# ---- the config ------------------------------------------------------------------------------
service_config() {
    local shipped=config/notesight.toml config="$ETC_DIR/config.toml"
    mkdir -p "$ETC_DIR" "$(dirname "$DEFAULT_RECORD")"
    if [[ ! -e $config ]]; then
        say "config: installing the default config as $config"
        install -m 0644 "$shipped" "$config"
    elif [[ -f $DEFAULT_RECORD ]] && cmp -s "$shipped" "$DEFAULT_RECORD"; then
        say "config: $config kept as it is"
    elif cmp -s "$shipped" "$config"; then
        say "config: $config kept (it is the default)"
    elif [[ -f $config.new ]] && cmp -s "$shipped" "$config.new"; then
        say "config: $config kept; the new default is already in $config.new"
    else
        say "config: $config kept; the default changed: see $config.new and copy what you want"
        install -m 0644 "$shipped" "$config.new"
    fi
    if ! cmp -s "$shipped" "$DEFAULT_RECORD" 2>/dev/null; then
        install -m 0644 "$shipped" "$DEFAULT_RECORD"
    fi
    # With an invalid config the service would start with its last good config or the
    # defaults (ExecStartPre only reports it): say so now, while someone is watching.
    if ! "$OPT_DIR/bin/notesight" check-config "$config"; then
        die "fix $config (the lines above say what is wrong), then run this again"
    fi
}

# ---- SPI and I2C on a Raspberry Pi -----------------------------------------------------------
service_interfaces() {
    if ! is_raspberry_pi || ! command -v raspi-config >/dev/null 2>&1; then
        say "SPI/I2C: not a Raspberry Pi with raspi-config; skipped"
        return
    fi
    local what
    for what in spi i2c; do
        # raspi-config nonint get_X prints 0 when enabled.
        if [[ $(raspi-config nonint "get_$what" 2>/dev/null) == 0 ]]; then
            say "${what^^}: already enabled"
        else
            say "${what^^}: enabling (takes effect at the next reboot if the module is busy)"
            system_run raspi-config nonint "do_$what" 0
        fi
    done
}

# ---- the unit --------------------------------------------------------------------------------
service_unit() {
    mkdir -p "$(dirname "$UNIT_FILE")"
    if cmp -s systemd/notesight.service "$UNIT_FILE"; then
        say "service: $UNIT_FILE is up to date"
    else
        say "service: installing $UNIT_FILE"
        install -m 0644 systemd/notesight.service "$UNIT_FILE"
        SERVICE_CHANGED=1
        if [[ -n $ROOT ]] || have_systemd; then system_run systemctl daemon-reload; fi
    fi
    if [[ -z $ROOT ]] && ! have_systemd; then
        say "service: systemd is not running here (a container?); start it by hand where it is"
        return
    fi
    if [[ -n $ROOT ]] || ! systemctl is-enabled --quiet notesight 2>/dev/null; then
        system_run systemctl enable notesight
    fi
    if ((SERVICE_CHANGED)); then
        system_run systemctl restart notesight
    elif [[ -n $ROOT ]] || ! systemctl is-active --quiet notesight; then
        system_run systemctl start notesight
    else
        say "service: notesight is running"
    fi
}

service_mosquitto() {
    ((WANT_MOSQUITTO)) || return 0
    if [[ -z $ROOT ]] && have_systemd && systemctl is-enabled --quiet mosquitto 2>/dev/null &&
        systemctl is-active --quiet mosquitto; then
        say "mosquitto: the local broker is running"
        return
    fi
    say "mosquitto: enabling the local broker (set [mqtt].enabled = true, host = \"localhost\")"
    if [[ -n $ROOT ]] || have_systemd; then system_run systemctl enable --now mosquitto; fi
}

install_service() {
    require_root_for_service --service
    service_paths
    SERVICE_CHANGED=0
    if [[ -n $ROOT ]]; then
        mkdir -p "$ROOT"
        say "installing into $ROOT (system commands are only printed)"
        system_run apt-get install "${APT_PACKAGES[@]}"
    else
        install_apt_packages
    fi
    service_user
    service_venv
    service_config
    service_interfaces
    service_unit
    service_mosquitto
    say "done: notesight runs as a service; check it with $OPT_DIR/bin/notesight doctor"
}

# ---- uninstall -------------------------------------------------------------------------------
uninstall_service() {
    require_root_for_service --uninstall
    service_paths
    if [[ -e $UNIT_FILE ]]; then
        if [[ -n $ROOT ]] || have_systemd; then
            system_run systemctl disable --now notesight
        fi
        say "service: removing $UNIT_FILE"
        rm -f "$UNIT_FILE"
        if [[ -n $ROOT ]] || have_systemd; then system_run systemctl daemon-reload; fi
    fi
    if [[ -e $OPT_DIR ]]; then
        say "service environment: removing $OPT_DIR"
        rm -rf "$OPT_DIR"
    fi
    if getent passwd "$SERVICE_USER" >/dev/null; then
        say "user: removing $SERVICE_USER"
        system_run userdel "$SERVICE_USER"
    fi
    if ((WANT_PURGE)); then
        say "purge: removing $ETC_DIR and $STATE_DIR"
        rm -rf "$ETC_DIR" "$STATE_DIR"
    else
        say "kept: the config in $ETC_DIR and the state in $STATE_DIR (--purge removes them)"
    fi
    say "done: notesight is no longer installed as a service"
}
