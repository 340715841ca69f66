# Shared shell functions for scripts/test, scripts/demo and scripts/benchmark.
# Sourced, not run. Nothing here downloads or installs Odoo: Odoo 18.0 is a
# prerequisite, found as `import odoo` or through ODOO_PATH.

MO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '%s\n' "$*" >&2; }

# A Python that can `import odoo`: $ODOO_PYTHON, python3, then pyenv's.
# ODOO_PATH, when set, names an Odoo source folder (the one holding odoo-bin).
find_odoo_python() {
    if [ -n "${ODOO_PATH:-}" ]; then
        export PYTHONPATH="$ODOO_PATH${PYTHONPATH:+:$PYTHONPATH}"
    fi
    local candidates=()
    [ -n "${ODOO_PYTHON:-}" ] && candidates+=("$ODOO_PYTHON")
    candidates+=(python3 python)
    local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    if command -v pyenv >/dev/null 2>&1; then
        candidates+=("$(pyenv which python3 2>/dev/null || true)")
    elif [ -x "$pyenv_root/bin/pyenv" ]; then
        candidates+=("$("$pyenv_root/bin/pyenv" which python3 2>/dev/null || true)")
    fi
    [ -x "$pyenv_root/shims/python3" ] && candidates+=("$pyenv_root/shims/python3")
    local py
    for py in "${candidates[@]}"; do
        [ -n "$py" ] || continue
        if "$py" -c 'import odoo, odoo.release; assert odoo.release.version_info[0] == 18' \
            >/dev/null 2>&1; then
            command -v "$py" 2>/dev/null || echo "$py"
            return 0
        fi
    done
    return 1
}

# Any Python 3 with pytest, for the pure suite when Odoo is missing.
find_plain_python() {
    local py
    for py in "${ODOO_PYTHON:-}" python3 "${PYENV_ROOT:-$HOME/.pyenv}/shims/python3"; do
        [ -n "$py" ] || continue
        if "$py" -c 'import pytest' >/dev/null 2>&1; then
            command -v "$py" 2>/dev/null || echo "$py"
            return 0
        fi
    done
    return 1
}

pg_bindir() {
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir
        return
    fi
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$dir/initdb" ] && { echo "$dir"; return; }
    done
    return 1
}

# Start a throwaway PostgreSQL cluster on a unix socket in a temporary folder.
# Sets PG_TMP (the folder), PGHOST (socket dir) and PGUSER; pg_stop removes it.
# initdb refuses root and Odoo refuses the `postgres` role: as root, the
# cluster runs as an unprivileged user `odoo` (created when missing).
pg_start() {
    local bindir
    bindir=$(pg_bindir) || { say "PostgreSQL server binaries not found (initdb)"; return 1; }
    PG_TMP=$(mktemp -d /tmp/mail_outbound_pg.XXXXXX)
    chmod 755 "$PG_TMP"
    PG_RUN=()
    PGUSER=$(id -un)
    if [ "$(id -u)" = 0 ]; then
        id odoo >/dev/null 2>&1 || useradd --system --no-create-home odoo
        chown odoo "$PG_TMP"
        PG_RUN=(runuser -u odoo --)
        PGUSER=odoo
    fi
    "${PG_RUN[@]}" "$bindir/initdb" -D "$PG_TMP/data" -U "$PGUSER" --auth=trust \
        -E UTF8 >"$PG_TMP/initdb.log" 2>&1 \
        || { cat "$PG_TMP/initdb.log" >&2; return 1; }
    "${PG_RUN[@]}" "$bindir/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w \
        -o "-k $PG_TMP -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null \
        || { cat "$PG_TMP/server.log" >&2; return 1; }
    PG_BINDIR=$bindir
    export PGHOST=$PG_TMP PGUSER
}

pg_stop() {
    [ -n "${PG_TMP:-}" ] || return 0
    if [ -d "$PG_TMP/data" ]; then
        "${PG_RUN[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_TMP/data" -m immediate stop \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_TMP"
    PG_TMP=
}

# An addons folder holding `mail_outbound` -> this repository, whatever the
# checkout is called, plus Odoo's own addons folders.
odoo_addons_path() {
    local py=$1
    MO_ADDONS=$(mktemp -d /tmp/mail_outbound_addons.XXXXXX)
    ln -s "$MO_ROOT" "$MO_ADDONS/mail_outbound"
    local odoo_dir
    odoo_dir=$("$py" -c 'import os, odoo; print(os.path.dirname(odoo.__file__))')
    local paths="$odoo_dir/addons"
    [ -d "$odoo_dir/../addons" ] && paths="$(cd "$odoo_dir/../addons" && pwd),$paths"
    echo "$paths,$MO_ADDONS"
}

free_port() {
    "$1" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
