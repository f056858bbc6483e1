# Throwaway PostgreSQL clusters for tests, benchmarks and the demo.  Sourced by
# test/run, bench/run and scripts/demo.
#
# PostgreSQL refuses to run as root, so as root clusters run as the unprivileged
# `postgres` user.  Work directories live under the project when that user can reach
# it, else in a private directory under /tmp.

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
bindir=$("$PG_CONFIG" --bindir)
pgxs="$("$PG_CONFIG" --pkglibdir)/pgxs"
pg_regress="$pgxs/src/test/regress/pg_regress"
export PATH="$bindir:$PATH"

if [ "$(id -u)" -eq 0 ]; then
	runas=(runuser -u postgres --)
	owner=postgres
else
	runas=()
	owner=$(id -un)
fi

# make_workdir PROJECT_DIR NAME: prints a fresh work directory owned by $owner.
make_workdir() {
	local dir="$1/$2"
	if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$1"; then
		dir=$(mktemp -d "/tmp/integration-$2.XXXXXX")
	fi
	rm -rf "$dir"
	mkdir -p "$dir"
	chown "$owner" "$dir" 2>/dev/null || true
	echo "$dir"
}

# free_port: a free TCP port on 127.0.0.1.
free_port() {
	python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

# make_key_file PATH: a fresh key for integration.encryption_key_file (64 hex digits),
# owned by $owner and readable by nobody else, as the server demands.
make_key_file() {
	( umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$1" )
	chown "$owner" "$1" 2>/dev/null || true
}

# cluster_start DATADIR PORT [CONF_LINE...]: initdb, configure for loopback only, start.
# Endpoint secrets are encrypted under a fresh key in DATADIR.key; a CONF_LINE
# "integration.encryption_key_file = ''" turns that off.
cluster_start() {
	local datadir=$1 port=$2
	shift 2
	"${runas[@]}" initdb -D "$datadir" -A trust -E UTF8 --locale=C.UTF-8 >"$datadir.initdb.log" 2>&1 ||
		{ cat "$datadir.initdb.log"; return 1; }
	make_key_file "$datadir.key"
	{
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $port"
		echo "unix_socket_directories = '$(dirname "$datadir")'"
		echo "shared_preload_libraries = 'integration'"
		echo "max_worker_processes = 16"
		echo "integration.encryption_key_file = '$datadir.key'"
		for line in "$@"; do echo "$line"; done
	} >>"$datadir/postgresql.conf"
	"${runas[@]}" pg_ctl -D "$datadir" -l "$datadir.log" -w start >/dev/null ||
		{ cat "$datadir.log"; return 1; }
}

# cluster_stop DATADIR [MODE]
cluster_stop() {
	if [ -f "$1/postmaster.pid" ]; then
		"${runas[@]}" pg_ctl -D "$1" -m "${2:-fast}" -w stop >/dev/null 2>&1 || true
	fi
}
