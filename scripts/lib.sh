# Shared shell functions for scripts/test, scripts/demo and scripts/benchmark.
# Sourced, not run. Odoo 18.0 itself is a prerequisite (ODOO_PATH or an
# importable odoo); its Python requirements and the project's tools are
# installed into the project virtualenv by ensure_venv.

MO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '%s\n' "$*" >&2; }

# --- Python: the project virtualenv ---------------------------------------------
# Odoo 18.0 is found, in this order, as ODOO_PATH (an Odoo source folder, the
# one holding odoo-bin), as an `odoo` the base Python already imports, or as
# the copy the project's CI keeps beside the checkout (../shared/odoo). The
# commands then create or reuse $MO_VENV (.venv at the repository root) and
# install into it, pinned: Odoo's requirements (scripts/odoo_requirements.py)
# and requirements.txt. A hash of those inputs is kept in the venv; a second
# run with the same inputs installs nothing.

MO_VENV=${MO_VENV:-$MO_ROOT/.venv}

# The base Python: $MO_PYTHON, else python3; 3.10 to 3.12 (Odoo 18.0's range).
base_python() {
    local py
    for py in "${MO_PYTHON:-}" python3 "${PYENV_ROOT:-$HOME/.pyenv}/shims/python3"; do
        [ -n "$py" ] || continue
        command -v "$py" >/dev/null 2>&1 || continue
        if "$py" -c 'import sys, venv; assert (3, 10) <= sys.version_info[:2] <= (3, 12)' \
            >/dev/null 2>&1; then
            command -v "$py"
            return 0
        fi
    done
    say "no Python 3.10 to 3.12 with venv found (Debian: apt-get install python3-venv)"
    return 1
}

# Where Odoo comes from. Prints the Odoo source folder for ODOO_PATH, or
# "importable" when the base Python imports odoo 18; fails when neither.
odoo_source() {
    local base=$1
    if [ -n "${ODOO_PATH:-}" ]; then
        if [ -f "$ODOO_PATH/odoo-bin" ] && [ -f "$ODOO_PATH/odoo/release.py" ]; then
            (cd "$ODOO_PATH" && pwd)
            return 0
        fi
        say "ODOO_PATH=$ODOO_PATH does not hold odoo-bin and odoo/: ignored"
    fi
    if "$base" -c 'import odoo.release as r; assert r.version_info[0] == 18' \
        >/dev/null 2>&1; then
        echo importable
        return 0
    fi
    # the project's CI keeps an Odoo 18.0 copy beside the checkout
    local unpack=$MO_ROOT/../shared/odoo/unpack
    if [ -x "$unpack" ]; then
        local dir
        if dir=$("$unpack") && [ -f "$dir/odoo-bin" ]; then
            say "Odoo 18.0 from ../shared/odoo (no ODOO_PATH, no importable odoo): $dir"
            echo "$dir"
            return 0
        fi
    fi
    return 1
}

# When the base Python is itself a virtualenv holding Odoo (the usual way to
# run Odoo from source), a venv made from it is made from the interpreter
# that venv was made from (venv's own rule), and --system-site-packages
# shows that interpreter's packages, not the virtualenv's: Odoo would not
# import. A .pth file in the project venv adds the base virtualenv's
# site-packages (and its own .pth files) after its own, so Odoo and its requirements come from there
# and the project's pinned tools, installed in .venv, come first. Written on
# every run: it follows the virtualenv the user activated.
link_base_environment() {
    local base=$1 vpy=$2 site
    site=$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
    "$base" - "$site/mail_outbound_base_env.pth" <<'PYTHON' || return 1
import site, sys, sysconfig
target = sys.argv[1]
paths = []
if sys.prefix != sys.base_prefix:
    for key in ("purelib", "platlib"):
        path = sysconfig.get_paths()[key]
        if path not in paths:
            paths.append(path)
if paths:
    # addsitedir, not a bare path: the virtualenv's own .pth files (an
    # editable Odoo, pip install -e) are read too
    with open(target, "w") as pth:
        pth.write("".join(f"import site; site.addsitedir({path!r})\n" for path in paths))
else:
    import os
    if os.path.exists(target):
        os.remove(target)
PYTHON
}

# Create or reuse the venv and install what changed. $1: base Python, $2:
# odoo_source's answer, or empty for the pure suite's tools only. Prints the
# venv's python.
ensure_venv() {
    local base=$1 odoo=${2:-}
    local reqs="$MO_VENV/.mail_outbound-requirements.txt"
    local stamp="$MO_VENV/.mail_outbound-inputs"
    local site_flag=()
    # an Odoo installed in the base Python (pip, a distribution package) stays
    # visible from the venv; its requirements are then already there
    [ "$odoo" = importable ] && site_flag=(--system-site-packages)
    if [ -x "$MO_VENV/bin/python" ]; then
        local want have
        want=$("$base" -c 'import sys; print(sys.version_info[:2])')
        have=$("$MO_VENV/bin/python" -c 'import sys; print(sys.version_info[:2])' 2>/dev/null)
        local sys_site=0
        grep -qi '^include-system-site-packages = true' "$MO_VENV/pyvenv.cfg" && sys_site=1
        if [ "$want" != "$have" ] || [ "$sys_site" != "${#site_flag[@]}" ]; then
            say "recreating $MO_VENV (Python or Odoo source changed)"
            rm -rf "$MO_VENV"
        fi
    fi
    if [ ! -x "$MO_VENV/bin/python" ]; then
        say "creating the project virtualenv $MO_VENV"
        "$base" -m venv "${site_flag[@]}" "$MO_VENV" >&2 || return 1
    fi
    local vpy=$MO_VENV/bin/python
    if [ "$odoo" = importable ]; then
        link_base_environment "$base" "$vpy" || return 1
    fi
    {
        if [ -n "$odoo" ] && [ "$odoo" != importable ]; then
            echo "# Odoo's requirements (requirements.txt of the Odoo folder)"
            "$vpy" "$MO_ROOT/scripts/odoo_requirements.py" "$odoo/requirements.txt" 2>/dev/null \
                || return 1
        fi
        echo "# mail_outbound ($MO_ROOT/requirements.txt)"
        grep -vE '^\s*(#|$)' "$MO_ROOT/requirements.txt"
    } >"$reqs.new" || { say "could not read Odoo's requirements"; return 1; }
    local hash
    hash=$( { cat "$reqs.new"; "$vpy" -VV; } | sha256sum | cut -c1-16)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
        rm -f "$reqs.new"
        say "virtualenv $MO_VENV is up to date (inputs $hash)"
        echo "$vpy"
        return 0
    fi
    mv "$reqs.new" "$reqs"
    say "installing $(grep -cvE '^\s*(#|$)' "$reqs") pinned packages into $MO_VENV (inputs $hash)"
    local t0=$SECONDS
    local pip_flags=()
    # with Odoo's environment visible, pip would take a tool found there as
    # installed, and its scripts would not be in this venv: ours go here
    [ "$odoo" = importable ] && pip_flags=(--ignore-installed)
    if ! "$vpy" -m pip install --disable-pip-version-check -q "${pip_flags[@]}" -r "$reqs" >&2; then
        say "pip install failed; fix the error above and run the command again"
        rm -f "$stamp"
        return 1
    fi
    echo "$hash" >"$stamp"
    say "installed in $((SECONDS - t0))s"
    echo "$vpy"
}

# The Python to run everything with: sets MO_PY (the venv's python) and
# MO_ODOO (the Odoo source folder, "importable", or empty when Odoo was not
# found). With ODOO_PATH, Odoo is put on PYTHONPATH.
setup_python() {
    local base
    base=$(base_python) || return 1
    MO_ODOO=$(odoo_source "$base") || MO_ODOO=
    MO_PY=$(ensure_venv "$base" "$MO_ODOO") || return 1
    if [ -n "$MO_ODOO" ] && [ "$MO_ODOO" != importable ]; then
        export PYTHONPATH="$MO_ODOO${PYTHONPATH:+:$PYTHONPATH}"
    fi
    if [ -n "$MO_ODOO" ] && ! "$MO_PY" -c 'import odoo.release' >/dev/null 2>&1; then
        say "Odoo at $MO_ODOO does not import from $MO_PY:"
        "$MO_PY" -c 'import odoo.release' 2>&1 | tail -3 >&2
        return 1
    fi
    return 0
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
# Tests run on a cluster that does not flush to disk (fast, and a lost
# throwaway cluster costs nothing); MO_PG_DURABLE=1 keeps PostgreSQL's real
# durability (fsync, synchronous commit), e.g. to measure what the queue's
# synchronous hand-over records cost: MO_PG_DURABLE=1 scripts/benchmark.
pg_start() {
    local PG_DURABILITY="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [ "${MO_PG_DURABLE:-0}" = 1 ] && PG_DURABILITY="-c fsync=on -c synchronous_commit=on"
    local bindir
    if ! bindir=$(pg_bindir); then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            say "PostgreSQL's server binaries are missing: apt-get install postgresql"
            { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                postgresql; } >&2 || true
        fi
        bindir=$(pg_bindir) || {
            say "PostgreSQL server binaries not found (initdb): apt-get install postgresql"
            return 1
        }
    fi
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
        -o "-k $PG_TMP -c listen_addresses='' $PG_DURABILITY" \
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

# An addons folder holding `mail_outbound`, whatever the checkout is called,
# plus Odoo's own addons folders. The module folder links each entry of the
# repository but .venv and .git: Odoo's translation export walks the whole
# module folder and would read the virtualenv's thousands of files.
odoo_addons_path() {
    local py=$1
    MO_ADDONS=$(mktemp -d /tmp/mail_outbound_addons.XXXXXX)
    mkdir "$MO_ADDONS/mail_outbound"
    local entry
    for entry in "$MO_ROOT"/* "$MO_ROOT"/.[!.]*; do
        [ -e "$entry" ] || continue
        case "${entry##*/}" in .venv|.git) continue ;; esac
        ln -s "$entry" "$MO_ADDONS/mail_outbound/${entry##*/}"
    done
    local odoo_dir
    odoo_dir=$("$py" -c 'import os, odoo; print(os.path.dirname(odoo.__file__))')
    local paths="$odoo_dir/addons"
    [ -d "$odoo_dir/../addons" ] && paths="$(cd "$odoo_dir/../addons" && pwd),$paths"
    echo "$paths,$MO_ADDONS"
}

free_port() {
    "$1" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- OCA/mail, for the compatibility phase (issue #14) -------------------------
# $MO_OCA_MAIL names a folder holding oca-mail-18.0-<commit>.tar.xz (CI keeps
# it at ../shared/oca beside the checkout), or that tarball, or a folder
# where it is already unpacked. The tarball is unpacked once into a cache
# folder, like ../shared/odoo/unpack does. Prints the addons folder; fails
# when there is none (users of the addon do not need it).
oca_mail_path() {
    local source=${MO_OCA_MAIL:-$MO_ROOT/../shared/oca}
    if [ -f "$source/mail_tracking/__manifest__.py" ]; then
        (cd "$source" && pwd)
        return 0
    fi
    local tarball=$source
    if [ -d "$source" ]; then
        tarball=$(ls -1 "$source"/oca-mail-18.0-*.tar.xz 2>/dev/null | sort | tail -1)
    fi
    [ -n "$tarball" ] && [ -f "$tarball" ] || return 1
    local name
    name=$(basename "$tarball" .tar.xz)
    local dest="${MO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}}/$name"
    if [ ! -f "$dest/mail_tracking/__manifest__.py" ]; then
        mkdir -p "$(dirname "$dest")"
        local tmp
        tmp=$(mktemp -d "$dest.tmp.XXXXXX")
        tar -xJf "$tarball" -C "$tmp" || { rm -rf "$tmp"; return 1; }
        # the tarball holds the repository's files at its top, or one folder
        if [ ! -f "$tmp/mail_tracking/__manifest__.py" ]; then
            local inner
            inner=$(dirname "$(ls -1 "$tmp"/*/mail_tracking/__manifest__.py 2>/dev/null | head -1)")
            [ -n "$inner" ] && [ "$inner" != . ] || { rm -rf "$tmp"; return 1; }
            mv "$inner" "$tmp.inner" && rm -rf "$tmp" && mv "$tmp.inner" "$tmp"
        fi
        rm -rf "$dest"
        mv "$tmp" "$dest"
    fi
    echo "$dest"
}
