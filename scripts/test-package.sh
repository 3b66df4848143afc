#!/usr/bin/env bash
# Tests the Debian package as an operator gets it (issue 20, "installed as a
# service"): builds it (scripts/package.sh), installs it with dpkg -i into THIS
# machine, checks files, modes, the warren user and the conffiles, starts the
# INSTALLED broker the way its systemd unit does (ExecStart, User, Group,
# WorkingDirectory, UMask, LimitNOFILE and Environment read from the installed
# unit file; NoNewPrivileges and the empty capability bounding set through
# setpriv) with a NOTIFY_SOCKET this script owns, and checks that READY=1
# comes from the broker's own pid once the listeners accept; then a pika round
# trip, a bare `warrenctl status` as root (no flags: it must find the broker
# through /etc/warren), a clean stop (STOPPING=1, exit 0), a reinstall over
# the same version (the upgrade path) that leaves the data directory and a
# changed conffile as they were, a durable message surviving it, `dpkg -r`
# keeping /var/lib/warren, and `dpkg -P` deleting it and /etc/warren.
#
# What it cannot do here: systemd is installed but not PID 1 (no systemctl
# start), so the unit's sandboxing is not enforced. Instead one start runs
# under strace and every system call the broker makes (start, a pika round
# trip, warrenctl, stop) is checked against the unit: SystemCallFilter (as
# systemd-analyze expands it), MemoryDenyWriteExecute, RestrictAddressFamilies,
# ProtectSystem=strict with ReadWritePaths, ProtectHome; and the same trace
# shows listen() on every port before READY=1 is sent. `systemd-analyze
# verify` checks the unit's syntax.
#
# Needs root and the package's default ports (5672, 15672, 15692, 1883) free:
# it fails at once, naming what is in the way, if they are not, if a warren
# package is installed, or if /var/lib/warren, /var/log/warren or /etc/warren
# exist. It leaves the machine as it found it (a trap kills the broker,
# purges the packages and deletes the warren user and group if it created
# them); the one thing it may add is Debian's strace package, installed when
# missing as scripts/test.sh installs the other tools the tests need.
#
# scripts/test.sh runs it as its last step; WARREN_SKIP_PACKAGE=1 skips it
# there outside CI (under CI=true it always runs). WARREN_PACKAGE_SKIP_BUILD=1
# packages an existing target/release build (scripts/package.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PORTS=(5672 15672 15692 1883)
UNIT=/lib/systemd/system/warren.service
DATA=/var/lib/warren
LOGS=/var/log/warren
ETC=/etc/warren
BARE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

step() { printf '\n--> %s\n' "$*"; }
fail() {
    echo "test-package.sh: FAIL: $*" >&2
    exit 1
}
check() { # check "what" command...: fails naming what when the command fails
    local what="$1"
    shift
    "$@" || fail "$what"
}

# ---------------------------------------------------------------- preflight
[ "$(id -u)" = 0 ] || fail "must run as root (it installs a package)"
for tool in dpkg dpkg-query setpriv getent readelf python3; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing"
done
installed_status() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true; }
for p in warren warren-dbgsym; do
    case "$(installed_status "$p")" in
    "" | not-installed) ;;
    *) fail "package $p is already on this machine ($(installed_status "$p")); this test installs and purges its own" ;;
    esac
done
for d in "$DATA" "$LOGS" "$ETC"; do
    [ ! -e "$d" ] || fail "$d exists; this test would purge it (move it away first)"
done
python3 - "${PORTS[@]}" <<'PY' || fail "the package's default ports must be free for this test"
import socket, sys
busy = []
for port in map(int, sys.argv[1:]):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        s.bind(("::", port))
        s.listen(1)
    except OSError as e:
        busy.append(f"{port} ({e.strerror})")
    finally:
        s.close()
if busy:
    print("ports in use: " + ", ".join(busy), file=sys.stderr)
    sys.exit(1)
PY
user_existed=0
getent passwd warren >/dev/null && user_existed=1
group_existed=0
getent group warren >/dev/null && group_existed=1

tmp="$(mktemp -d)"
chmod 0755 "$tmp"
broker_pid=""   # the process this script started (strace, when tracing)
main_pid=""     # the broker's own pid (systemd's main pid)
listener_pid=""
stop_pid() { # stop_pid PID: TERM, up to 60 s, then KILL
    local pid="$1"
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    set +e
    # strace, killed, would leave its tracee running: the broker goes first,
    # found as strace's child if READY=1 never named it.
    if [ -z "$main_pid" ] && [ -n "$broker_pid" ]; then
        main_pid="$(ps -o pid= --ppid "$broker_pid" | head -1 | tr -d ' ')"
    fi
    stop_pid "$main_pid"
    stop_pid "$broker_pid"
    stop_pid "$listener_pid"
    if [ "$rc" -ne 0 ] && [ -f "$tmp/broker.log" ]; then
        echo "the installed broker's output (last 40 lines):" >&2
        tail -40 "$tmp/broker.log" >&2
    fi
    for p in warren-dbgsym warren; do
        case "$(installed_status "$p")" in
        "" | not-installed) ;;
        *) dpkg --purge "$p" >/dev/null 2>&1 || echo "cleanup: dpkg --purge $p failed" >&2 ;;
        esac
    done
    [ "$user_existed" = 1 ] || ! getent passwd warren >/dev/null || userdel warren
    [ "$group_existed" = 1 ] || ! getent group warren >/dev/null || groupdel warren
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT

# ------------------------------------------------------------------- build
step "build the packages (scripts/package.sh)"
mapfile -t debs < <(scripts/package.sh)
deb="${debs[0]}"
dbgdeb="${debs[1]}"
[ -f "$deb" ] && [ -f "$dbgdeb" ] || fail "scripts/package.sh did not print two .deb files"
case "$(basename "$deb")" in
warren_*_"$(dpkg --print-architecture)".deb) ;;
*) fail "unexpected package name $(basename "$deb")" ;;
esac
py="$(scripts/python-env.sh)"

# ----------------------------------------------------------------- install
step "dpkg -i $(basename "$deb") $(basename "$dbgdeb")"
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" "$dbgdeb" </dev/null
[ "$(installed_status warren)" = installed ] || fail "warren is not installed after dpkg -i"

step "files, modes, owners, the warren user"
mode_owner() { stat -c '%a %U:%G' "$1"; }
expect_mode() { # expect_mode PATH "MODE USER:GROUP"
    local got
    got="$(mode_owner "$1")"
    [ "$got" = "$2" ] || fail "$1 is $got, expected $2"
}
for b in warren warrenctl; do
    expect_mode "/usr/sbin/$b" "755 root:root"
    sections="$(readelf -S -W "/usr/sbin/$b" 2>/dev/null)"
    ! grep -q '\.debug_info' <<<"$sections" || fail "/usr/sbin/$b still carries debug info"
    grep -q '\.gnu_debuglink' <<<"$sections" || fail "/usr/sbin/$b has no .gnu_debuglink"
    id="$(readelf -n "/usr/sbin/$b" | sed -n 's/^ *Build ID: *\([0-9a-f]*\)$/\1/p' | head -1)"
    symbols="/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug"
    [ -n "$id" ] && [ -f "$symbols" ] || fail "no debug symbols for /usr/sbin/$b at $symbols"
    grep -q '\.debug_info' <<<"$(readelf -S -W "$symbols" 2>/dev/null)" || fail "$symbols has no .debug_info"
done
if command -v gdb >/dev/null 2>&1; then
    # gdb looks in /usr/lib/debug by build id, as an operator's would.
    grep -q 'crates/server/src/lib.rs' <<<"$(gdb -batch -ex 'info line warren_server::main' /usr/sbin/warren 2>/dev/null)" ||
        fail "gdb does not find the installed debug symbols of /usr/sbin/warren"
else
    echo "gdb is not installed: the symbols' lookup by build id is checked by path only"
fi
[ "$(readlink /usr/sbin/warren-diagnostics)" = warrenctl ] || fail "/usr/sbin/warren-diagnostics is not a link to warrenctl"
size="$(stat -c %s /usr/sbin/warren)"
echo "installed /usr/sbin/warren: $size bytes"
passwd_line="$(getent passwd warren)" || fail "no warren user"
IFS=: read -r _ _ uid gid _ home shell <<<"$passwd_line"
[ "$uid" -lt 1000 ] || fail "warren is not a system user (uid $uid)"
[ "$home" = "$DATA" ] || fail "warren's home is $home, expected $DATA"
case "$shell" in */nologin | /bin/false) ;; *) fail "warren's shell is $shell" ;; esac
[ "$(getent group warren | cut -d: -f3)" = "$gid" ] || fail "warren's primary group is not warren"
expect_mode "$DATA" "700 warren:warren"
expect_mode "$LOGS" "750 warren:warren"
expect_mode "$ETC/rabbitmq.conf" "640 root:warren"
expect_mode "$ETC/rabbitmq-env.conf" "644 root:root"
expect_mode "$UNIT" "644 root:root"
if grep -Ev '^[[:space:]]*(#|$)' "$ETC/rabbitmq.conf"; then
    fail "$ETC/rabbitmq.conf sets the lines above; every line must be commented out"
fi
grep -qx 'MNESIA_DIR=/var/lib/warren' "$ETC/rabbitmq-env.conf" || fail "rabbitmq-env.conf lacks MNESIA_DIR=/var/lib/warren"
grep -qx 'LOG_BASE=/var/log/warren' "$ETC/rabbitmq-env.conf" || fail "rabbitmq-env.conf lacks LOG_BASE=/var/log/warren"
conffiles="$(dpkg-query -W -f='${Conffiles}\n' warren)"
for f in "$ETC/rabbitmq.conf" "$ETC/rabbitmq-env.conf"; do
    grep -q " $f " <<<"$conffiles" || fail "$f is not a conffile"
done
unit_get() { sed -n "s/^$1=//p" "$UNIT" | tail -1; }
[ "$(unit_get Type)" = notify ] || fail "the unit is not Type=notify"
[ "$(unit_get NotifyAccess)" = main ] || fail "the unit lacks NotifyAccess=main"
grep -q '^EnvironmentFile=' "$UNIT" && fail "the unit has EnvironmentFile=, which this test does not emulate"
if command -v systemd-analyze >/dev/null 2>&1; then
    step "systemd-analyze verify $UNIT"
    check "systemd-analyze verify found problems in $UNIT" systemd-analyze verify "$UNIT"
else
    echo "systemd-analyze is not installed: the unit's syntax is not verified"
fi

# ----------------------------------------------- the broker, as the unit runs it
cat >"$tmp/listener.py" <<'PY'
# A service manager's end of NOTIFY_SOCKET: records each datagram with the
# sender's pid (SCM_CREDENTIALS), and on READY=1 at once (no retry) checks
# that every port accepts and that the AMQP port answers the protocol header.
import json, os, socket, struct, sys, time
path, out, deadline_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
ports = [int(p) for p in sys.argv[4:]]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.settimeout(0.5)
open(out + ".bound", "w").close()
events = []
deadline = time.monotonic() + deadline_s
def amqp_start(port):
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        c.sendall(b"AMQP\x00\x00\x09\x01")
        head = c.recv(7)
        return len(head) == 7 and head[0] == 1  # a method frame: connection.start
    finally:
        c.close()
while time.monotonic() < deadline:
    try:
        data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
    except socket.timeout:
        continue
    pid = None
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", cdata[:12])[0]
    lines = data.decode(errors="replace").splitlines()
    ev = {"lines": lines, "pid": pid}
    if "READY=1" in lines:
        ev["accepting"] = {}
        for p in ports:
            try:
                socket.create_connection(("127.0.0.1", p), timeout=5).close()
                ev["accepting"][str(p)] = True
            except OSError as e:
                ev["accepting"][str(p)] = str(e)
        try:
            ev["amqp_start"] = amqp_start(ports[0])
        except OSError as e:
            ev["amqp_start"] = str(e)
    events.append(ev)
    with open(out + ".tmp", "w") as f:
        json.dump(events, f)
    os.replace(out + ".tmp", out)
    if "STOPPING=1" in lines:
        break
PY

# start_broker NAME [traced]: the installed broker as the unit starts it;
# waits for READY=1 and checks it. "traced" runs it under strace, recording
# every system call: the order of events (the listener's check at READY=1
# can't see a READY sent a moment too early: the broker binds its ports in
# microseconds; its system calls can), and audit_trace's checks of the
# unit's sandbox.
start_broker() {
    local name="$1" traced="${2:-}" exec_start user group workdir umask_v nofile home line
    local tracer=()
    if [ "$traced" = traced ]; then
        tracer=(strace -f -qq -yy -s 256 -o "$tmp/trace-$name.txt")
    fi
    exec_start="$(unit_get ExecStart)"
    exec_start="${exec_start#[-@+!:]}"
    user="$(unit_get User)"
    group="$(unit_get Group)"
    workdir="$(unit_get WorkingDirectory)"
    umask_v="$(unit_get UMask)"
    nofile="$(unit_get LimitNOFILE)"
    [ -n "$exec_start" ] && [ -n "$user" ] && [ -n "$group" ] || fail "the unit lacks ExecStart, User or Group"
    home="$(getent passwd "$user" | cut -d: -f6)"
    local unit_env=()
    while IFS= read -r line; do
        eval "unit_env+=($line)"
    done < <(sed -n 's/^Environment=//p' "$UNIT")
    local sock="$tmp/notify-$name" events="$tmp/events-$name.json"
    "$py" "$tmp/listener.py" "$sock" "$events" 600 "${PORTS[@]}" >"$tmp/listener-$name.log" 2>&1 &
    listener_pid=$!
    for _ in $(seq 1 100); do
        [ -e "$events.bound" ] && break
        sleep 0.1
    done
    [ -e "$events.bound" ] || fail "the notify listener did not start: $(cat "$tmp/listener-$name.log")"
    # systemd's environment for a system service with User=: PATH, HOME,
    # USER, LOGNAME, SHELL, then the unit's Environment=, then NOTIFY_SOCKET.
    # shellcheck disable=SC2086 # ExecStart's words
    (
        cd "${workdir:-/}"
        [ -z "$umask_v" ] || umask "$umask_v"
        if [ -n "$nofile" ] && ! ulimit -n "$nofile" 2>/dev/null; then
            # Only PID 1 (or CAP_SYS_RESOURCE) raises a hard limit; what
            # this machine allows is what the test can give.
            ulimit -n "$(ulimit -Hn)"
        fi
        exec "${tracer[@]}" env -i PATH="$BARE_PATH" HOME="$home" USER="$user" LOGNAME="$user" SHELL=/usr/sbin/nologin \
            "${unit_env[@]}" NOTIFY_SOCKET="$sock" \
            setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs \
            --bounding-set=-all --inh-caps=-all -- $exec_start
    ) >>"$tmp/broker.log" 2>&1 &
    broker_pid=$!
    main_pid=""
    for _ in $(seq 1 600); do
        [ -f "$events" ] && break
        kill -0 "$broker_pid" 2>/dev/null || fail "the installed broker exited before READY=1"
        sleep 0.2
    done
    [ -f "$events" ] || fail "no READY=1 on NOTIFY_SOCKET within 120 s"
    # The sender's pid: the broker (under strace, strace's child).
    main_pid="$("$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["pid"] or "")' "$events")"
    local expect_pid="$broker_pid"
    [ -z "$traced" ] || expect_pid=0 # strace's child
    "$py" - "$events" "$expect_pid" "${PORTS[@]}" <<'PY' || fail "readiness was not as the unit needs it"
import json, sys
events, pid, ports = json.load(open(sys.argv[1])), int(sys.argv[2]), sys.argv[3:]
pid = pid or events[0]["pid"]
first = events[0]
assert "READY=1" in first["lines"], f"the first notification is not READY=1: {first}"
assert any(l.startswith("STATUS=") for l in first["lines"]), f"READY=1 without STATUS=: {first}"
assert first["pid"] == pid, f"READY=1 came from pid {first['pid']}, not the main pid {pid} (NotifyAccess=main)"
for p in ports:
    assert first["accepting"][p] is True, f"port {p} did not accept when READY=1 arrived: {first['accepting'][p]}"
assert first["amqp_start"] is True, f"the AMQP port did not answer the protocol header at READY=1: {first['amqp_start']}"
print(f"READY=1 from pid {pid} with {[l for l in first['lines'] if l.startswith('STATUS=')][0]!r}; ports {', '.join(ports)} accepting")
PY
    if [ -n "$traced" ]; then
        "$py" - "$tmp/trace-$name.txt" "${PORTS[@]}" <<'PY' || fail "READY=1 was sent before every listener was up"
import re, sys
lines = open(sys.argv[1]).read().splitlines()
ready = next((i for i, l in enumerate(lines) if re.search(r"\b(sendto|sendmsg)\(.*READY=1", l)), None)
assert ready is not None, "no READY=1 in the broker's system calls"
for port in sys.argv[2:]:
    listen = next((i for i, l in enumerate(lines) if re.search(r"\blisten\(\d+<TCP(v6)?:\[.*:" + port + r"\]>", l)), None)
    assert listen is not None, f"no listen() on port {port}"
    assert listen < ready, f"port {port}: listen() came after READY=1 was sent"
print(f"the broker's system calls: listen() on {', '.join(sys.argv[2:])}, then READY=1")
PY
    fi
    local uid_line
    uid_line="$(awk '/^Uid:/ {print $2}' "/proc/$main_pid/status")"
    [ "$uid_line" = "$(id -u "$user")" ] || fail "the broker runs as uid $uid_line, not $user"
    if [ -n "$nofile" ]; then
        local want="$nofile"
        if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$nofile" ]; then
            want="$(ulimit -Hn)"
            echo "note: this machine's hard open-files limit is $want, below the unit's LimitNOFILE=$nofile (which systemd, as PID 1, can set); the broker gets $want here"
        fi
        grep -Eq "^Max open files +$want +$want " "/proc/$main_pid/limits" || fail "the broker's open-files limit is not $want"
    fi
    # The data directory comes from /etc/warren/rabbitmq-env.conf (MNESIA_DIR).
    [ -S "$DATA/warren.sock" ] || fail "no control socket $DATA/warren.sock: the broker did not take its data directory from $ETC/rabbitmq-env.conf (MNESIA_DIR)"
}

# stop_broker: SIGTERM, as systemd stops it; STOPPING=1 and exit status 0.
stop_broker() {
    local events="$1" rc=0
    kill -TERM "$main_pid"
    for _ in $(seq 1 600); do
        kill -0 "$broker_pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -0 "$broker_pid" 2>/dev/null && fail "the broker did not stop within 120 s of SIGTERM"
    wait "$broker_pid" || rc=$?
    broker_pid=""
    main_pid=""
    [ "$rc" = 0 ] || fail "the broker exited with status $rc after SIGTERM"
    for _ in $(seq 1 100); do
        kill -0 "$listener_pid" 2>/dev/null || break
        sleep 0.1
    done
    stop_pid "$listener_pid"
    listener_pid=""
    "$py" -c '
import json, sys
events = json.load(open(sys.argv[1]))
assert any("STOPPING=1" in e["lines"] for e in events), f"no STOPPING=1: {events}"
assert sum("READY=1" in e["lines"] for e in events) == 1, f"READY=1 more than once: {events}"
' "$events" || fail "the stop was not notified as the unit needs it"
}

cat >"$tmp/amqp.py" <<'PY'
# pika against the installed broker: a confirmed round trip, and a durable
# message left for after the reinstall (mode "publish"), or taken back
# (mode "survived").
import sys, pika
mode = sys.argv[1]
conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
ch = conn.channel()
ch.confirm_delivery()
persistent = pika.BasicProperties(delivery_mode=2)
if mode in ("publish", "roundtrip"):
    ch.queue_declare("package-roundtrip", durable=True)
    ch.basic_publish("", "package-roundtrip", b"round trip", persistent, mandatory=True)
    method, _, body = ch.basic_get("package-roundtrip", auto_ack=False)
    assert method is not None and body == b"round trip", (method, body)
    ch.basic_ack(method.delivery_tag)
    print("round trip done")
if mode == "publish":
    ch.queue_declare("package-upgrade", durable=True)
    ch.basic_publish("", "package-upgrade", b"kept across the upgrade", persistent, mandatory=True)
    print("one durable message left in package-upgrade")
elif mode == "survived":
    method, _, body = ch.basic_get("package-upgrade", auto_ack=False)
    assert method is not None, "the durable message did not survive the reinstall"
    assert body == b"kept across the upgrade", body
    ch.basic_ack(method.delivery_tag)
    print("the durable message survived the reinstall")
conn.close()
PY

# audit_trace FILE: what the broker did (from the exec of ExecStart on; setpriv
# and env before it stand in for systemd) against the unit's sandbox, which
# only systemd as PID 1 enforces: SystemCallFilter, MemoryDenyWriteExecute,
# RestrictAddressFamilies, ProtectSystem=strict with ReadWritePaths (and
# PrivateTmp, PrivateDevices), ProtectHome.
audit_trace() {
    local trace="$1" filter
    filter="$(unit_get SystemCallFilter)"
    local allowed="$tmp/allowed-syscalls.txt"
    : >"$allowed"
    if [ -n "$filter" ] && command -v systemd-analyze >/dev/null 2>&1; then
        "$py" - "$filter" >"$allowed" <<'PY' || fail "cannot expand SystemCallFilter=$filter with systemd-analyze"
import subprocess, sys
seen, names, todo = set(), set(), sys.argv[1].split()
while todo:
    item = todo.pop()
    if not item.startswith("@"):
        names.add(item)
        continue
    if item in seen:
        continue
    seen.add(item)
    out = subprocess.run(["systemd-analyze", "syscall-filter", item], check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines()[1:]:
        word = line.strip()
        if word and not word.startswith("#"):
            todo.append(word)
assert len(names) > 100, f"{sys.argv[1]} expanded to {len(names)} system calls only"
print("\n".join(sorted(names)))
PY
    else
        echo "note: no SystemCallFilter expansion (systemd-analyze missing): system calls not audited"
    fi
    "$py" - "$trace" "$(unit_get ExecStart)" "$allowed" "$(unit_get ReadWritePaths)" <<'PY' || fail "the broker does something its unit's sandbox forbids (above)"
import re, sys
trace, exec_start, allowed_file, rw = sys.argv[1], sys.argv[2].split()[0].lstrip("-@+!:"), sys.argv[3], sys.argv[4].split()
lines = open(trace, errors="replace").read().splitlines()
start = next((i for i, l in enumerate(lines) if re.search(r'\bexecve\("' + re.escape(exec_start) + r'"', l) and "= 0" in l), None)
assert start is not None, f"no execve of {exec_start} in the trace"
lines = lines[start + 1:]
allowed = set(open(allowed_file).read().split())
problems = []
call = re.compile(r"^\d+ +(?:<\.\.\. )?([a-z0-9_]+)[( ]")
used = set()
for l in lines:
    m = call.match(l)
    if not m or l.split(None, 1)[1].startswith("+++") or l.split(None, 1)[1].startswith("---"):
        continue
    name = m.group(1)
    used.add(name)
    if allowed and name not in allowed:
        problems.append(f"SystemCallFilter: {name} is not allowed: {l[:160]}")
    if name == "mmap" and "PROT_WRITE" in l and "PROT_EXEC" in l:
        problems.append(f"MemoryDenyWriteExecute: writable and executable mapping: {l[:160]}")
    if name in ("mprotect", "pkey_mprotect") and "PROT_EXEC" in l:
        problems.append(f"MemoryDenyWriteExecute: mprotect to executable: {l[:160]}")
    if name in ("socket", "socketpair"):
        fam = re.search(r"\((AF_[A-Z0-9]+)", l)
        if fam and fam.group(1) not in ("AF_UNIX", "AF_INET", "AF_INET6"):
            problems.append(f"RestrictAddressFamilies: {fam.group(1)}: {l[:160]}")
    # Paths written: opened for writing or created, made, renamed, removed.
    writes = []
    if name in ("open", "openat", "openat2", "creat") and re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC", l):
        writes = re.findall(r'"(/[^"]*)"', l)[:1]
        rel = re.search(r'openat\(AT_FDCWD<([^>]*)>, "([^/"][^"]*)"', l)
        if rel:
            writes = [rel.group(1) + "/" + rel.group(2)]
    elif name in ("mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir", "truncate", "link", "linkat", "symlink", "symlinkat", "bind"):
        writes = re.findall(r'(?:<|")(/[^">]*)(?:>|")', l)
        writes = [w for w in writes if not w.startswith("/dev/")] if name != "bind" else re.findall(r'sun_path="(/[^"]*)"', l)
    for path in writes:
        ok = any(path == d or path.startswith(d.rstrip("/") + "/") for d in rw + ["/tmp", "/var/tmp", "/dev/null"])
        if not ok:
            problems.append(f"ProtectSystem=strict: writes {path}: {l[:160]}")
    for home in ("/home/", "/root/", "/run/user/"):
        if f'"{home}' in l or f"<{home}" in l:
            problems.append(f"ProtectHome: {l[:160]}")
for p in problems[:40]:
    print(p)
if problems:
    sys.exit(1)
print(f"{len(lines)} system calls ({len(used)} kinds) from exec to exit: within "
      + ("SystemCallFilter (" + str(len(allowed)) + " allowed), " if allowed else "")
      + "MemoryDenyWriteExecute, RestrictAddressFamilies, ReadWritePaths and ProtectHome")
PY
}

# A bare warrenctl as root: no flags, no WARREN_* in the environment.
bare() { env -i PATH="$BARE_PATH" HOME=/root "$@"; }

step "start the installed broker as the unit does (setpriv as warren, NOTIFY_SOCKET ours)"
start_broker first
step "pika round trip"
"$py" "$tmp/amqp.py" publish || fail "the pika round trip failed"
step "bare warrenctl status, list_queues and warren-diagnostics ping (as root)"
bare /usr/sbin/warrenctl status >"$tmp/status.out" 2>&1 || fail "warrenctl status failed: $(cat "$tmp/status.out")"
head -5 "$tmp/status.out"
bare /usr/sbin/warrenctl list_queues name messages >"$tmp/queues.out" 2>&1 || fail "warrenctl list_queues failed: $(cat "$tmp/queues.out")"
grep -Eq '^package-upgrade[[:space:]]+1$' "$tmp/queues.out" || fail "list_queues does not show package-upgrade with 1 message: $(cat "$tmp/queues.out")"
bare /usr/sbin/warren-diagnostics ping >"$tmp/ping.out" 2>&1 || fail "warren-diagnostics ping failed: $(cat "$tmp/ping.out")"
step "stop with SIGTERM"
stop_broker "$tmp/events-first.json"
step "traced: listen() on every port before READY=1; what the broker does fits the unit's sandbox"
if ! command -v strace >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends strace >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends strace >/dev/null; } ||
        fail "strace (Debian's package) could not be installed"
fi
start_broker traced traced
"$py" "$tmp/amqp.py" roundtrip || fail "the pika round trip failed (traced)"
bare /usr/sbin/warrenctl list_queues >/dev/null 2>&1 || fail "warrenctl list_queues failed (traced)"
stop_broker "$tmp/events-traced.json"
audit_trace "$tmp/trace-traced.txt"
grep -rqi "startup complete" "$LOGS" || fail "no log file under $LOGS says 'startup complete' (LOG_BASE from rabbitmq-env.conf)"

# --------------------------------------------------------------- upgrade
fingerprint() { (cd "$DATA" && find . -printf '%P %y %s %m %u %g %T@\n' | sort | sha256sum); }
step "reinstall the same package (the upgrade path): data and a changed conffile untouched"
echo "# changed by test-package.sh" >>"$ETC/rabbitmq.conf"
before="$(fingerprint)"
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" </dev/null
[ "$(fingerprint)" = "$before" ] || fail "reinstalling changed $DATA"
grep -qx '# changed by test-package.sh' "$ETC/rabbitmq.conf" || fail "reinstalling overwrote the changed $ETC/rabbitmq.conf"
expect_mode "$DATA" "700 warren:warren"
start_broker second
"$py" "$tmp/amqp.py" survived || fail "the durable message was lost"
stop_broker "$tmp/events-second.json"

# ---------------------------------------------------------- remove, purge
step "dpkg -r: the data directory, the logs and /etc/warren stay"
before="$(fingerprint)"
dpkg -r warren-dbgsym warren </dev/null
[ ! -e /usr/sbin/warren ] || fail "/usr/sbin/warren is still there after dpkg -r"
[ ! -e /usr/sbin/warren-diagnostics ] || fail "/usr/sbin/warren-diagnostics is still there after dpkg -r"
[ "$(installed_status warren)" = config-files ] || fail "after dpkg -r warren is $(installed_status warren), expected config-files"
[ "$(fingerprint)" = "$before" ] || fail "dpkg -r changed $DATA"
[ -f "$DATA/definitions.json" ] || fail "dpkg -r lost $DATA/definitions.json"
[ -d "$LOGS" ] || fail "dpkg -r removed $LOGS"
[ -f "$ETC/rabbitmq.conf" ] || fail "dpkg -r removed the conffile $ETC/rabbitmq.conf"

step "dpkg -P: the data directory, the logs and /etc/warren are deleted"
dpkg -P warren </dev/null
for d in "$DATA" "$LOGS" "$ETC"; do
    [ ! -e "$d" ] || fail "$d is still there after dpkg -P"
done
case "$(installed_status warren)" in "" | not-installed) ;; *) fail "warren is $(installed_status warren) after dpkg -P" ;; esac

echo
echo "test-package.sh: the package installs, starts as its unit says, serves, upgrades, removes and purges as documented"
