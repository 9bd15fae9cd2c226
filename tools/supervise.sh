#!/bin/sh
# supervise.sh start|stop|status|running|info|ctl ARGS... - supervisord for one instance.
#
#   start   run `supervisord -n` in the background, in a session of its own
#           (so stop, or a test, can end it and every program it started),
#           and wait until every program it runs is RUNNING; if they are not,
#           say which, the first error line of each (the cause), and the end
#           of supervisord's log, and exit 1 with supervisord left running
#           (stop ends it)
#   stop    SIGTERM to supervisord: it stops the programs (a SIGTERM to
#           each, ingest's first, then encrypt's and store's, without
#           waiting in between; each drains and exits 0) and exits; waits
#           for that. Exit status 0 only when every program exited 0.
#   status  `supervisorctl status` (exit 0 when all are RUNNING, 3 when one
#           is not, 4 when supervisord does not answer)
#   running quiet: exit 0 when every program is RUNNING, 1 otherwise
#   info NAME   one program's state and pid: `RUNNING 1234` (pid 0 when
#           none); exit 4 when supervisord does not answer
#   ctl     any supervisorctl command: supervise.sh ctl stop ctxvault:ctxvault-encrypt
#
# Environment: CTXVAULT_HOME (required; or --home DIR first), CTXVAULT_BIN
# (default: the repository's bin/), CTXVAULT_SUPERVISORD_CONF (default:
# etc/supervisord.conf beside this script), SUPERVISE_TIMEOUT (seconds to
# wait for RUNNING or for a stop; default 30).
#
# supervisord's files are in HOME/run: supervisord.pid, supervisord.sock,
# supervisord.log (its own log: starts, exits, restarts), one log per
# program (ctxvault-store.log, ...) and supervisord.out (its stdout/stderr).
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
die() { printf 'supervise: %s\n' "$*" >&2; exit 1; }

if [ "${1:-}" = --home ]; then
    [ $# -ge 2 ] || die "--home needs a directory"
    CTXVAULT_HOME=$2
    shift 2
fi
[ -n "${CTXVAULT_HOME:-}" ] || die "set CTXVAULT_HOME (or --home DIR): the instance"
case $CTXVAULT_HOME in /*) ;; *) CTXVAULT_HOME=$(pwd)/$CTXVAULT_HOME ;; esac
CTXVAULT_BIN=${CTXVAULT_BIN:-$top/bin}
case $CTXVAULT_BIN in /*) ;; *) CTXVAULT_BIN=$(pwd)/$CTXVAULT_BIN ;; esac
conf=${CTXVAULT_SUPERVISORD_CONF:-$top/etc/supervisord.conf}
timeout=${SUPERVISE_TIMEOUT:-30}
export CTXVAULT_HOME CTXVAULT_BIN

run=$CTXVAULT_HOME/run
pidfile=$run/supervisord.pid
log=$run/supervisord.log

ctl() { supervisorctl -c "$conf" "$@"; }

# rpc METHOD [NAME]: one XML-RPC call on supervisord's socket; its answer
# (XML, one element a line) on stdout. Through curl, not supervisorctl: a
# poll costs a tenth of supervisorctl's Python start-up, so polling does not
# take the CPU from the programs; and each call makes supervisord's loop
# turn, which otherwise sleeps up to 1 s between turns (a SIGTERM or SIGCHLD
# does not wake it), so a start, restart or stop is seen and acted on sooner.
rpc() {
    _arg=
    [ $# -ge 2 ] && _arg="<params><param><value><string>$2</string></value></param></params>"
    curl -s -f --max-time 10 --unix-socket "$run/supervisord.sock" \
        -H 'Content-Type: text/xml' \
        -d "<?xml version=\"1.0\"?><methodCall><methodName>supervisor.$1</methodName>$_arg</methodCall>" \
        http://localhost/RPC2 2> /dev/null
}
have_curl() { command -v curl > /dev/null 2>&1; }

# rpc_members NAME...: from an rpc answer of process infos, one line per
# process: the values of the members NAME..., tab-separated, in that order
rpc_members() {
    awk -v want="$*" '
        BEGIN { n = split(want, w, " ") }
        /<name>[a-z_]*<\/name>/ {
            k = $0; gsub(/.*<name>|<\/name>.*/, "", k)
            getline v; gsub(/<[^>]*>/, "", v); val[k] = v; got = 1
        }
        /<\/struct>/ && got {
            line = ""
            for (i = 1; i <= n; i++) line = line (i > 1 ? "\t" : "") val[w[i]]
            print line; got = 0; delete val
        }'
}

# info NAME: `STATE PID` of one program; exit 4 when supervisord does not answer
info() {
    if ! have_curl; then
        _st=$(ctl status "$1" 2> /dev/null | awk '{ print $2 }')
        [ -n "$_st" ] || return 4
        echo "$_st $(ctl pid "$1" 2> /dev/null)"
        return 0
    fi
    _i=$(rpc getProcessInfo "$1" | rpc_members statename pid | tr '\t' ' ')
    [ -n "$_i" ] || return 4
    echo "$_i"
}

# alive PID: PID runs. A zombie does not count: supervisord, started in a
# session of its own, is reaped by whatever adopted it (init, a container's
# first process), which can take seconds, and kill -0 succeeds until then.
alive() {
    kill -0 "$1" 2> /dev/null || return 1
    if [ -r "/proc/$1/stat" ]; then
        ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2> /dev/null
    fi
}

# the pid of a live supervisord of this instance, or nothing
live_pid() {
    [ -s "$pidfile" ] || return 1
    _p=$(cat "$pidfile" 2> /dev/null)
    case $_p in '' | *[!0-9]*) return 1 ;; esac
    alive "$_p" || return 1
    echo "$_p"
}

# all_running: supervisorctl answers and lists at least one program, each RUNNING
all_running() {
    if have_curl; then
        _st=$(rpc getAllProcessInfo | rpc_members statename)
    else
        _st=$(ctl status 2> /dev/null | awk '{ print $2 }') || return 1
    fi
    [ -n "$_st" ] || return 1
    ! printf '%s\n' "$_st" | grep -qv '^RUNNING$'
}

# show_status: what `supervisorctl status` prints, without its start-up cost
show_status() {
    have_curl || { ctl status; return; }
    rpc getAllProcessInfo | rpc_members group name statename description |
        awk -F '\t' '{ printf "%-33s%-10s%s\n", $1 ":" $2, $3, $4 }'
}

start() {
    [ -f "$conf" ] || die "$conf is missing"
    [ -f "$CTXVAULT_HOME/ctxvault.conf" ] || die "$CTXVAULT_HOME is not an instance: ctxvault init first"
    command -v supervisord > /dev/null || die "supervisord is missing: install supervisor (make deps)"
    if p=$(live_pid); then
        die "supervisord already runs for $CTXVAULT_HOME (pid $p)"
    fi
    mkdir -p "$run" && chmod 0700 "$run" || die "cannot make $run"
    rm -f "$pidfile"
    # where each program's log ends now: a failure is told from its new lines
    marks=
    for _f in "$run"/*.log; do
        [ -f "$_f" ] && marks="$marks $(basename "$_f" .log)=$(wc -l < "$_f")"
    done
    # a session of its own: supervisord is its leader, and the programs it
    # starts (each in a process group of its own) stay in it
    setsid supervisord -n -c "$conf" < /dev/null > "$run/supervisord.out" 2>&1 &
    n=$((timeout * 10))
    while [ "$n" -gt 0 ]; do
        if all_running; then
            show_status
            return 0
        fi
        if [ -s "$pidfile" ] && ! live_pid > /dev/null; then
            break   # it started, then died
        fi
        sleep 0.1
        n=$((n - 1))
    done
    {
        echo "supervise: the programs are not all RUNNING after ${timeout}s:"
        show_status 2>&1 | sed 's/^/    /'
        # the cause: the first error line of each program not RUNNING
        for _p in $(not_running); do
            _m=$(printf '%s\n' $marks | sed -n "s/^$_p=//p")
            _e=$(tail -n "+$((${_m:-0} + 1))" "$run/$_p.log" 2> /dev/null | grep -m 1 ': error: ')
            [ -n "$_e" ] && echo "supervise: $_p failed: $_e"
        done
        # supervisord -n writes its log to supervisord.out too: one of them,
        # the .out only when supervisord died before it opened its log
        if [ -s "$log" ]; then
            echo "supervise: $log ends:"
            tail -n 20 "$log" | sed 's/^/    /'
        else
            echo "supervise: $run/supervisord.out ends:"
            tail -n 20 "$run/supervisord.out" 2> /dev/null | sed 's/^/    /'
        fi
    } >&2
    return 1
}

# not_running: the programs (names without group) not RUNNING, one a line
not_running() {
    if have_curl; then
        rpc getAllProcessInfo | rpc_members name statename
    else
        ctl status 2> /dev/null | awk '{ n = $1; sub(/.*:/, "", n); print n "\t" $2 }'
    fi | awk -F '\t' '$2 != "RUNNING" { print $1 }'
}

stop() {
    p=$(live_pid) || { echo "supervise: supervisord is not running for $CTXVAULT_HOME"; return 0; }
    mark=$(wc -l < "$log" 2> /dev/null || echo 0)
    kill -TERM "$p" || return 1
    n=$((timeout * 10))
    while [ "$n" -gt 0 ] && alive "$p"; do
        # a call makes supervisord's loop turn: it acts on the SIGTERM, and
        # on each program's exit, without waiting out its 1 s poll
        have_curl && rpc getState > /dev/null
        sleep 0.1
        n=$((n - 1))
    done
    if alive "$p"; then
        echo "supervise: supervisord (pid $p) did not stop within ${timeout}s" >&2
        return 1
    fi
    # how each program ended, from supervisord's log of this stop
    tail -n "+$((mark + 1))" "$log" | grep 'stopped: ' | sed 's/^[^ ]* [^ ]* [A-Z]* /supervise: /'
    if tail -n "+$((mark + 1))" "$log" | grep 'stopped: ' | grep -qv '(exit status 0)'; then
        echo "supervise: a program did not exit 0 on SIGTERM" >&2
        return 1
    fi
    return 0
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) ctl status ;;
running) all_running ;;
info) [ $# -eq 2 ] || die "usage: supervise.sh info NAME"; info "$2" ;;
ctl) shift; ctl "$@" ;;
*) die "usage: supervise.sh [--home DIR] start|stop|status|running|info NAME|ctl ARGS..." ;;
esac
