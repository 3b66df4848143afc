#!/usr/bin/env bash
# Runs Eclipse Paho's MQTT interoperability suite (client_test5.py for
# MQTT 5, client_test.py for MQTT 3.1.1) against a fresh Warren, each test
# in its own process with a time limit, one line per test and a summary.
#
# The suite is not in this repository: a pinned copy lives beside the
# checkout, in <repo root>/../shared/conformance/paho-mqtt-testing (read
# only; PAHO_DIR overrides). It is copied to a temporary directory and run
# from there. A missing copy fails the run (WARREN_SKIP_PAHO=1 skips it,
# explicitly).
#
# Fails when fewer than PAHO5_MIN MQTT 5 tests or PAHO311_MIN MQTT 3.1.1
# tests pass. The defaults are exactly what passes today: raise them as
# Warren's MQTT gets better, never lower them to hide a regression.
#   scripts/paho.sh                     WARREN_BIN defaults to target/debug/warren
#   PAHO_TESTS="test_basic testBasic" scripts/paho.sh     (a subset, by name)
# Per-test output is kept in target/paho/<suite>.<test>.log, the brokers' logs
# in target/paho/warren<N>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

# What must pass (issue 19 asks for 25 of 27 MQTT 5 tests). Today 26 pass;
# test_subscribe_failure does not (the suite wants SUBACK 0x80 where MQTT 5
# has 0x87, not authorized, which Warren sends). Some tests race in the
# suite itself: test_request_response waits for the wrong client's SUBACK
# before publishing, and on a loaded machine a CONNACK can miss the suite
# client's 0.5 s socket timeout (seen: test_unsubscribe's setUpClass). A
# failed test is therefore run once more, in a new process, and a pass then
# is shown as "pass (2nd run)".
PAHO5_MIN="${PAHO5_MIN:-25}"
PAHO311_MIN="${PAHO311_MIN:-10}"
limit="${PAHO_TEST_TIMEOUT:-60}"

if [ "${WARREN_SKIP_PAHO:-}" = "1" ]; then
    echo "paho: skipped (WARREN_SKIP_PAHO=1)"
    exit 0
fi
paho="${PAHO_DIR:-$root/../shared/conformance/paho-mqtt-testing}"
if [ ! -f "$paho/interoperability/client_test5.py" ]; then
    # A git worktree's root is not the main checkout's: try beside that too.
    common="$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)"
    if [ -z "${PAHO_DIR:-}" ] && [ -n "$common" ] &&
        [ -f "$common/../../shared/conformance/paho-mqtt-testing/interoperability/client_test5.py" ]; then
        paho="$common/../../shared/conformance/paho-mqtt-testing"
    else
        echo "paho: no Paho suite at $paho (set PAHO_DIR, or WARREN_SKIP_PAHO=1 to skip)" >&2
        exit 1
    fi
fi
bin="${WARREN_BIN:-$root/target/debug/warren}"
[ -x "$bin" ] || { echo "paho: no broker binary at $bin (cargo build)" >&2; exit 1; }
ctl="$(dirname "$bin")/warrenctl"
[ -x "$ctl" ] || { echo "paho: no warrenctl beside $bin (cargo build)" >&2; exit 1; }
# test_subscribe_failure expects a broker configured to refuse subscriptions
# to test/nosubscribe (the suite's -n option): a topic read permission on
# amq.topic for everything but the routing key test.nosubscribe (Rust's
# regex has no lookahead, hence the spelled-out complement).
nosub='^(?:.{0,15}|.{17,}|[^t].*|t[^e].*|te[^s].*|tes[^t].*|test[^\.].*|test\.[^n].*|test\.n[^o].*|test\.no[^s].*|test\.nos[^u].*|test\.nosu[^b].*|test\.nosub[^s].*|test\.nosubs[^c].*|test\.nosubsc[^r].*|test\.nosubscr[^i].*|test\.nosubscri[^b].*|test\.nosubscrib[^e].*)$'

work="$(mktemp -d)"
out="$root/target/paho"
rm -rf "$out"
mkdir -p "$out"
cp -r "$paho/interoperability" "$work/suite"
# The tests are mostly sleeps: PAHO_JOBS shards run side by side, each
# against its own broker (the suite's tests share client ids and topics,
# so within a shard they run one after another).
jobs="${PAHO_JOBS:-3}"
# Ports below the kernel's ephemeral range, all distinct (tests/python/ports.py).
mapfile -t free_ports < <(python3 "$root/tests/python/ports.py" $((2 * jobs)))
pids=()
ports=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
for j in $(seq 0 $((jobs - 1))); do
    mqtt_port="${free_ports[$((2 * j))]}"
    "$bin" --bind 127.0.0.1 --amqp-port "${free_ports[$((2 * j + 1))]}" --mqtt-port "$mqtt_port" --data-dir "$work/data$j" \
        --disable-management --disable-prometheus --log-level warning \
        --mqtt-max-keepalive 60 >"$out/warren$j.log" 2>&1 &
    pids+=($!)
    ports+=("$mqtt_port")
done
for j in $(seq 0 $((jobs - 1))); do
    up=0
    for _ in $(seq 1 100); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1', ${ports[$j]}), 0.2)" 2>/dev/null; then
            up=1
            break
        fi
        sleep 0.1
    done
    [ "$up" = 1 ] || { echo "paho: a broker did not listen on ${ports[$j]}" >&2; cat "$out/warren$j.log" >&2; exit 1; }
    "$ctl" --data-dir "$work/data$j" set_topic_permissions -p / guest amq.topic '.*' "$nosub" >/dev/null
done

# Every `def test...` of each file's Test class: "file label test" lines.
for spec in "client_test5.py mqtt5" "client_test.py mqtt311"; do
    set -- $spec
    for t in $(grep -oE '^    def (test[A-Za-z0-9_]*)' "$work/suite/$1" | awk '{print $2}'); do
        if [ -z "${PAHO_TESTS:-}" ] || [[ " $PAHO_TESTS " == *" $t "* ]]; then
            echo "$1 $2 $t"
        fi
    done
done >"$work/tests"

# shard J: runs its tests (every jobs-th line), writing "label test rc secs".
shard() {
    local j="$1" n=0 file label t rc start
    while read -r file label t; do
        n=$((n + 1))
        [ $(((n - 1) % jobs)) = "$j" ] || continue
        start=$SECONDS
        rc=0
        # The suite's own host default is "localhost" (AF_INET): 127.0.0.1.
        (cd "$work/suite" && timeout -k 5 "$limit" python3 "$file" -p "${ports[$j]}" "Test.$t") \
            >"$out/$label.$t.log" 2>&1 </dev/null || rc=$?
        if [ "$rc" != 0 ]; then
            # Once more (see PAHO5_MIN): rc 200 marks a pass on the 2nd run.
            mv "$out/$label.$t.log" "$out/$label.$t.1st.log"
            (cd "$work/suite" && timeout -k 5 "$limit" python3 "$file" -p "${ports[$j]}" "Test.$t") \
                >"$out/$label.$t.log" 2>&1 </dev/null && rc=200
        fi
        echo "$label $t $rc $((SECONDS - start))" >>"$work/results"
    done <"$work/tests"
}
shards=()
for j in $(seq 0 $((jobs - 1))); do
    shard "$j" &
    shards+=($!)
done
for s in "${shards[@]}"; do wait "$s"; done

declare -A passed total
passed=([mqtt5]=0 [mqtt311]=0)
total=([mqtt5]=0 [mqtt311]=0)
while read -r file label t; do
    read -r _ _ rc secs < <(grep "^$label $t " "$work/results")
    total[$label]=$((total[$label] + 1))
    if [ "$rc" = 0 ] || [ "$rc" = 200 ]; then
        passed[$label]=$((passed[$label] + 1))
        printf 'paho %-8s pass  %-34s %3ss%s\n' "$label" "$t" "$secs" "$([ "$rc" = 200 ] && echo '  (2nd run)')"
    elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        printf 'paho %-8s FAIL  %-34s %3ss  (no result within %ss)\n' "$label" "$t" "$secs" "$limit"
    else
        # The assertion's last line says why.
        printf 'paho %-8s FAIL  %-34s %3ss  (%s)\n' "$label" "$t" "$secs" \
            "$(grep -E '^[A-Za-z]*(Error|Exception)' "$out/$label.$t.log" | tail -1 | cut -c1-110)"
    fi
done <"$work/tests"

status=0
echo "paho: MQTT 5     ${passed[mqtt5]}/${total[mqtt5]} passed (required: $PAHO5_MIN)"
echo "paho: MQTT 3.1.1 ${passed[mqtt311]}/${total[mqtt311]} passed (required: $PAHO311_MIN)"
if [ "${passed[mqtt5]}" -lt "$PAHO5_MIN" ] || [ "${passed[mqtt311]}" -lt "$PAHO311_MIN" ]; then
    echo "paho: fewer tests pass than required; outputs in $out" >&2
    status=1
fi
for j in $(seq 0 $((jobs - 1))); do
    if grep -q "panicked" "$out/warren$j.log"; then
        echo "paho: a broker panicked:" >&2
        grep -A5 "panicked" "$out/warren$j.log" >&2
        status=1
    fi
    if ! kill -0 "${pids[$j]}" 2>/dev/null; then
        echo "paho: a broker died during the suite:" >&2
        tail -20 "$out/warren$j.log" >&2
        status=1
    fi
done
exit "$status"
