#!/bin/bash
# Install the zynqmm appliance on a Kria (KR260) or PYNQ (PYNQ-Z2, ZCU102)
# Ubuntu image with PYNQ 3.x in /usr/local/share/pynq-venv.
#
#   install.sh --source DIR --board NAME [--prefix ROOT] [--owner USER]
#              [--pynq-venv DIR] [--start]
#
# DIR holds what `zynqmm install` uploads: zynqmm.service, zynqmm.logrotate,
# zynqmm.toml (the board's default configuration), zynqmm_agent.py and,
# optionally, config.toml (a configuration to install), token (the
# management token), a zynqmm wheel for the pynq venv.
#
# Re-running is safe: an existing configuration and token are kept unless
# new ones are given (the replaced configuration is kept as a dated backup).
# With --prefix everything goes below ROOT and systemd is left alone.
# Secrets are never printed or logged.
set -euo pipefail
umask 022

PREFIX=/
SOURCE=
BOARD=
OWNER=
START=0
PYNQ_VENV=/usr/local/share/pynq-venv
SERVICE=zynqmm.service

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=${2:?}; shift 2 ;;
        --source) SOURCE=${2:?}; shift 2 ;;
        --board) BOARD=${2:?}; shift 2 ;;
        --owner) OWNER=${2:?}; shift 2 ;;
        --pynq-venv) PYNQ_VENV=${2:?}; shift 2 ;;
        --start) START=1; shift ;;
        -h|--help) usage ;;
        *) echo "install.sh: unknown option $1" >&2; usage ;;
    esac
done
[ -n "$SOURCE" ] && [ -d "$SOURCE" ] || { echo "install.sh: --source DIR is required" >&2; exit 2; }
case "$BOARD" in
    kr260|zcu102|pynqz2) ;;
    *) echo "install.sh: --board must be kr260, zcu102 or pynqz2 (got '$BOARD')" >&2; exit 2 ;;
esac
case "$PREFIX" in
    /*) ;;
    *) echo "install.sh: --prefix must be an absolute path" >&2; exit 2 ;;
esac
PREFIX=${PREFIX%/}
REAL_ROOT=0
[ -z "$PREFIX" ] && REAL_ROOT=1

ETC=$PREFIX/etc/zynqmm
OPT=$PREFIX/opt/zynqmm
LOGDIR=$PREFIX/var/log/zynqmm
LOG=$LOGDIR/install.log

fail() { echo "install.sh: $*" >&2; [ -d "$LOGDIR" ] && echo "$(date -u +%FT%TZ) error: $*" >> "$LOG"; exit 1; }

if [ "$REAL_ROOT" = 1 ] && [ "$(id -u)" != 0 ]; then
    fail "installing into / needs root (run it through sudo)"
fi

mkdir -p "$LOGDIR"
say() {
    printf 'zynqmm-install: %s\n' "$*"
    printf '%s %s\n' "$(date -u +%FT%TZ)" "$*" >> "$LOG"
}
say "installing for $BOARD into ${PREFIX:-/}"

if [ "$REAL_ROOT" = 1 ]; then
    if [ -r /etc/os-release ] && ! grep -q '^ID=ubuntu' /etc/os-release; then
        say "warning: not an Ubuntu image; the unit assumes the Kria/PYNQ Ubuntu layout"
    fi
    if [ ! -x "$PYNQ_VENV/bin/python3" ]; then
        say "warning: no pynq venv at $PYNQ_VENV: overlays cannot be loaded until PYNQ is installed"
    fi
fi

for required in zynqmm.service zynqmm.logrotate zynqmm.toml zynqmm_agent.py; do
    [ -f "$SOURCE/$required" ] || fail "$SOURCE/$required is missing"
done

install -d -m 0755 "$OPT" "$OPT/lib" "$OPT/overlays" "$PREFIX/etc/systemd/system" \
    "$PREFIX/etc/logrotate.d" "$PREFIX/var/lib/zynqmm"
install -d -m 0750 "$ETC"
install -m 0644 "$SOURCE/zynqmm.service" "$PREFIX/etc/systemd/system/$SERVICE"
install -m 0644 "$SOURCE/zynqmm.logrotate" "$PREFIX/etc/logrotate.d/zynqmm"
install -m 0644 "$SOURCE/zynqmm_agent.py" "$OPT/lib/zynqmm_agent.py"
[ -f "$SOURCE/README.md" ] && install -m 0644 "$SOURCE/README.md" "$OPT/README.md"
say "installed $SERVICE, logrotate rules and the board agent"

# Configuration: a given one replaces the installed one (kept as a backup);
# otherwise an existing one stays and the board default is used only on a
# first install.
CONFIG=$ETC/zynqmm.toml
if [ -f "$SOURCE/config.toml" ]; then
    if [ -f "$CONFIG" ] && ! cmp -s "$SOURCE/config.toml" "$CONFIG"; then
        backup=$CONFIG.$(date -u +%Y%m%dT%H%M%SZ).bak
        cp -p "$CONFIG" "$backup"
        say "configuration: previous one kept as $backup"
    fi
    install -m 0640 "$SOURCE/config.toml" "$CONFIG"
    say "configuration: installed the given one as $CONFIG"
    CONFIG_STATE=given
elif [ -f "$CONFIG" ]; then
    install -m 0640 "$SOURCE/zynqmm.toml" "$CONFIG.default"
    say "configuration: kept $CONFIG (board default written to $CONFIG.default)"
    CONFIG_STATE=kept
else
    install -m 0640 "$SOURCE/zynqmm.toml" "$CONFIG"
    say "configuration: installed the $BOARD default as $CONFIG"
    CONFIG_STATE=default
fi

ENVIRONMENT=$ETC/environment
if [ ! -f "$ENVIRONMENT" ]; then
    case "$BOARD" in kr260) PYNQ_BOARD=KR260 ;; zcu102) PYNQ_BOARD=ZCU102 ;; *) PYNQ_BOARD=Pynq-Z2 ;; esac
    cat > "$ENVIRONMENT.new" <<EOF
# Read by zynqmm.service.  PYNQ looks at BOARD and XILINX_XRT.
BOARD=$PYNQ_BOARD
XILINX_XRT=/usr
PYTHONUNBUFFERED=1
EOF
    chmod 0644 "$ENVIRONMENT.new"
    mv "$ENVIRONMENT.new" "$ENVIRONMENT"
fi

# The management token lives only in secrets.env (root, 0600).  It is
# written with umask 077 so it is never readable by others, not even briefly.
SECRETS=$ETC/secrets.env
if [ -f "$SOURCE/token" ]; then
    TOKEN_STATE=given
elif [ -f "$SECRETS" ] && grep -q '^ZYNQMM_TOKEN=.' "$SECRETS"; then
    TOKEN_STATE=kept
else
    TOKEN_STATE=generated
fi
if [ "$TOKEN_STATE" != kept ]; then
    (
        umask 077
        if [ "$TOKEN_STATE" = given ]; then
            token=$(tr -d '\r\n' < "$SOURCE/token")
            case "$token" in
                *[!A-Za-z0-9._~+/=-]*|"") echo "install.sh: the token must be non-empty URL-safe text" >&2; exit 1 ;;
            esac
        else
            token=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
        fi
        { [ -f "$SECRETS" ] && grep -v '^ZYNQMM_TOKEN=' "$SECRETS" || true; } > "$SECRETS.new"
        printf 'ZYNQMM_TOKEN=%s\n' "$token" >> "$SECRETS.new"
        mv "$SECRETS.new" "$SECRETS"
    ) || fail "could not write the management token"
fi
chmod 0600 "$SECRETS"
say "management token: $TOKEN_STATE ($SECRETS, not shown)"

PACKAGE=
for wheel in "$SOURCE"/*.whl; do
    [ -f "$wheel" ] || continue
    PACKAGE=$(basename "$wheel")
    [ -x "$PYNQ_VENV/bin/pip" ] || fail "no pip in $PYNQ_VENV: install PYNQ first"
    say "installing $PACKAGE into $PYNQ_VENV"
    "$PYNQ_VENV/bin/pip" install --disable-pip-version-check -q --upgrade "$wheel" 2>&1 \
        | sed 's/^/  pip: /'
done
[ -n "$PACKAGE" ] || say "python package: not given (pass --package to install a zynqmm wheel)"

if [ -n "$OWNER" ]; then
    id "$OWNER" > /dev/null 2>&1 || fail "no user $OWNER on the board"
    chown -R "$OWNER:" "$OPT/overlays" "$OPT/lib"
    say "overlays owned by $OWNER (flashing over SSH as $OWNER)"
    if [ "$OWNER" != root ]; then
        SUDOERS=$PREFIX/etc/sudoers.d/zynqmm
        install -d -m 0750 "$PREFIX/etc/sudoers.d"
        cat > "$SUDOERS.new" <<EOF
# zynqmm: let $OWNER program the fabric and restart the runtime without a password.
$OWNER ALL=(root) NOPASSWD: $PYNQ_VENV/bin/python3 /opt/zynqmm/lib/zynqmm_agent.py load *
$OWNER ALL=(root) NOPASSWD: /usr/bin/systemctl start $SERVICE, /usr/bin/systemctl stop $SERVICE, /usr/bin/systemctl restart $SERVICE
EOF
        chmod 0440 "$SUDOERS.new"
        if command -v visudo > /dev/null && ! visudo -cqf "$SUDOERS.new"; then
            rm -f "$SUDOERS.new"
            fail "the sudoers rule for $OWNER does not parse"
        fi
        mv "$SUDOERS.new" "$SUDOERS"
        say "sudo rule for $OWNER in $SUDOERS"
    fi
fi

if [ "$REAL_ROOT" = 1 ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable "$SERVICE" > /dev/null 2>&1
    say "systemd: $SERVICE enabled"
    if [ "$START" = 1 ]; then
        systemctl restart "$SERVICE"
        say "systemd: $SERVICE started"
    fi
elif [ "$REAL_ROOT" = 1 ]; then
    say "systemd: not running here; enable $SERVICE once it is"
else
    say "systemd: left alone (installed below the prefix $PREFIX)"
fi

cat > "$OPT/install.json.new" <<EOF
{"schema": "zynqmm-install/1", "installed_at": "$(date -u +%FT%TZ)", "board": "$BOARD",
 "prefix": "${PREFIX:-/}", "owner": "${OWNER:-}", "package": "${PACKAGE:-}",
 "config": "$CONFIG_STATE", "token": "$TOKEN_STATE"}
EOF
mv "$OPT/install.json.new" "$OPT/install.json"
say "done"
