#!/usr/bin/env bash
# Self-check for test/receiver/receiver.c and bench/curl_ceiling.c: builds
# both into a temporary directory, starts the receiver on a free port and
# checks each behaviour with the curl CLI, then measures the curl multi
# ceiling against it.  Exits non-zero if any check fails.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CC=${CC:-gcc}
CURL=${CURL:-/usr/bin/curl}
PYTHON=${PYTHON:-/usr/bin/python3}
COUNT=${COUNT:-20000}
CONCURRENCY=${CONCURRENCY:-32}

work=$(mktemp -d "${TMPDIR:-/tmp}/receiver-selftest.XXXXXX")
receiver_pid=

cleanup() {
	if [ -n "$receiver_pid" ] && kill -0 "$receiver_pid" 2>/dev/null; then
		kill -TERM "$receiver_pid" 2>/dev/null
		wait "$receiver_pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0
pass() { printf 'ok    %s\n' "$1"; }
fail() { printf 'FAIL  %s\n' "$1"; failures=$((failures + 1)); }
check() {	# check DESCRIPTION ACTUAL EXPECTED
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: got '$2', want '$3'"; fi
}

echo "== build"
$CC -O2 -Wall -Wextra -Werror -o "$work/receiver" "$root/test/receiver/receiver.c" || exit 1
$CC -O2 -Wall -Wextra -Werror -o "$work/curl_ceiling" "$root/bench/curl_ceiling.c" -lcurl || exit 1

echo "== start receiver"
# --max-seconds: a safety net should this script be killed before its trap runs.
"$work/receiver" --port 0 --port-file "$work/port" --log "$work/requests.jsonl" \
	--max-seconds 600 >"$work/receiver.out" 2>&1 &
receiver_pid=$!
for _ in $(seq 50); do
	[ -s "$work/port" ] && break
	sleep 0.1
done
[ -s "$work/port" ] || { echo "receiver did not start"; cat "$work/receiver.out"; exit 1; }
port=$(cat "$work/port")
base="http://127.0.0.1:$port"
grep -q "^listening on 127.0.0.1:$port\$" "$work/receiver.out" && pass "listening line" ||
	fail "listening line: $(cat "$work/receiver.out")"

# Every request in this script is bounded, so a broken receiver cannot hang it.
c() { "$CURL" -s --max-time 10 --noproxy '*' "$@"; }

echo "== behaviours"
check "default status" "$(c -o /dev/null -w '%{http_code}' "$base/plain")" 200

codes=$(for _ in 1 2 3 4; do c -o /dev/null -w '%{http_code} ' "$base/flaky?status=500x2"; done)
check "status=500x2 then 200" "$codes" "500 500 200 200 "
codes=$(for k in a b a; do c -o /dev/null -w '%{http_code} ' "$base/flaky?status=503x1&key=$k"; done)
check "status=503x1 counted per key" "$codes" "503 503 200 "

check "status=404" "$(c -o /dev/null -w '%{http_code}' "$base/x?status=404")" 404

c -o /dev/null -w '%{time_total}' "$base/slow?delay_ms=300" >"$work/slow.time" &
slow_pid=$!
sleep 0.05
fast=$(c -o /dev/null -w '%{time_total}' "$base/fast")
wait "$slow_pid"
slow=$(cat "$work/slow.time")
if awk -v s="$slow" 'BEGIN { exit !(s >= 0.300) }'; then pass "delay_ms=300 took ${slow}s"; else fail "delay_ms=300 took ${slow}s"; fi
if awk -v f="$fast" 'BEGIN { exit !(f < 0.150) }'; then pass "parallel request answered in ${fast}s"; else fail "parallel request took ${fast}s"; fi

check "body_bytes=100000" "$(c -o /dev/null -w '%{size_download}' "$base/big?body_bytes=100000")" 100000
check "body_bytes=0" "$(c -o /dev/null -w '%{size_download}' "$base/empty?body_bytes=0")" 0

headers=$(c -o /dev/null -D - "$base/moved?redirect=http%3A%2F%2Fexample.test%2Fnew%3Fa%3D1" | tr -d '\r')
check "redirect status" "$(printf '%s\n' "$headers" | awk 'NR == 1 { print $2 }')" 302
check "redirect Location" "$(printf '%s\n' "$headers" | sed -n 's/^Location: //p')" "http://example.test/new?a=1"

headers=$(c -o /dev/null -D - "$base/busy?status=429&retry_after=7" | tr -d '\r')
check "retry_after header" "$(printf '%s\n' "$headers" | sed -n 's/^Retry-After: //p')" 7

c -o /dev/null "$base/drop?close=1"
check "close=1 gives empty reply (curl exit 52)" "$?" 52

c -o /dev/null --max-time 0.5 "$base/hang?hang=1"
check "hang=1 never answers (curl exit 28)" "$?" 28

c -o /dev/null "$base/junk?garbage=1"
check "garbage=1 is not HTTP (curl exit 1, unsupported protocol)" "$?" 1
check "header_bytes=1000" "$(c -o /dev/null -D - "$base/pad?header_bytes=1000" | sed -n 's/^X-Padding: //p' | tr -d '\r' | wc -c)" 1001

c -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/json' \
	--data-binary '{"chunked":true}' "$base/chunked" >"$work/chunked.code"
check "chunked request body" "$(cat "$work/chunked.code")" 200

head -c $((3 * 1024 * 1024)) /dev/zero >"$work/too-big"
check "3 MiB body gets 413" "$(c -o /dev/null -w '%{http_code}' --data-binary @"$work/too-big" "$base/huge")" 413

# A request in absolute form, as a client sends it to a proxy, is served by its path.
check "absolute form, as through a proxy" \
	"$("$CURL" -s --max-time 10 -x "$base" -o /dev/null -w '%{http_code}' "http://hooks.example.invalid/p?status=201")" 201

# --host: another loopback address, and ::1 where IPv6 loopback exists.
for host in 127.0.0.2 ::1; do
	"$work/receiver" --host "$host" --port 0 --port-file "$work/port-$host" --max-seconds 10 \
		>"$work/receiver-$host.out" 2>&1 &
	for _ in $(seq 50); do [ -s "$work/port-$host" ] && break; sleep 0.1; done
	if [ ! -s "$work/port-$host" ]; then
		if [ "$host" = ::1 ]; then
			pass "--host ::1 skipped: $(cat "$work/receiver-$host.out")"
			continue
		fi
		fail "--host $host did not start: $(cat "$work/receiver-$host.out")"
		continue
	fi
	hp=$(cat "$work/port-$host")
	url="http://$host:$hp/x"
	[ "$host" = ::1 ] && url="http://[::1]:$hp/x"
	check "--host $host" "$(c -g -o /dev/null -w '%{http_code}' "$url")" 200
	kill -TERM %% 2>/dev/null; wait $! 2>/dev/null
done

body='{"event":"order.created","data":{"id":"ord_1","note":"caf\u00e9 \"quoted\"\nline"}}'
c -o /dev/null -H 'Content-Type: application/json' -H 'webhook-id: msg_selftest' \
	--data-binary "$body" "$base/hook?id=7"

echo "== stats"
# The longest gap between two counted requests: 300 ms between /gap/a and /gap/b, then
# /gap/c at once.  Control requests (/__stats, /__reset) are not counted.
c -o /dev/null "$base/__reset"
check "reset clears the longest gap" \
	"$(c "$base/__stats" | "$PYTHON" -c 'import json,sys; s = json.load(sys.stdin); print(s["requests"], s["max_gap_ms"], s["max_gap_end"])')" \
	"0 0.0 0.0"
c -o /dev/null "$base/gap/a"
sleep 0.3
c -o /dev/null "$base/gap/b"
c -o /dev/null "$base/gap/c"
if c "$base/__stats" | "$PYTHON" -c '
import json, sys
s = json.load(sys.stdin)
# The gap ended with /gap/b, before /gap/c (last_at); the loop never blocked that long.
assert s["requests"] == 3, s
assert 300 <= s["max_gap_ms"] < 2000, s
assert 0 < s["max_gap_end"] < s["last_at"], s
assert s["last_at"] - s["max_gap_end"] < 1, s
assert 0 < s["max_turn_ms"] < 300, s
'; then pass "max_gap_ms, max_gap_end, max_turn_ms"; else fail "max_gap_ms: $(c "$base/__stats")"; fi

echo "== log"
sleep 0.2	# flushed within 20 ms; leave slack for a loaded machine
if "$PYTHON" -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$work/requests.jsonl"; then
	pass "log is valid JSON Lines ($(wc -l <"$work/requests.jsonl") lines)"
else
	fail "log is not valid JSON Lines"
fi
if "$PYTHON" - "$work/requests.jsonl" "$body" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
hook = [l for l in lines if l["path"] == "/hook?id=7"]
assert len(hook) == 1, hook
h = hook[0]
assert h["method"] == "POST", h
assert h["body"] == sys.argv[2], h["body"]
assert h["body_len"] == len(sys.argv[2].encode()), h
assert h["headers"]["content-type"] == "application/json", h["headers"]
assert h["headers"]["webhook-id"] == "msg_selftest", h["headers"]
assert isinstance(h["t"], float) and h["t"] > 1.6e9, h["t"]
chunked = [l for l in lines if l["path"] == "/chunked"]
assert chunked and chunked[0]["body"] == '{"chunked":true}', chunked
EOF
then pass "logged request matches what was sent"; else fail "logged request does not match"; fi

echo "== curl multi ceiling"
if "$work/curl_ceiling" --url "$base/bench" --count "$COUNT" --concurrency "$CONCURRENCY" --max-seconds 120; then
	pass "curl_ceiling: all $COUNT requests 2xx"
else
	fail "curl_ceiling"
fi
echo "receiver stats: $(c "$base/__stats")"

if [ "$failures" -gt 0 ]; then
	echo "$failures check(s) failed"
	exit 1
fi
echo "all checks passed"
