#!/bin/sh
# supervise.sh start|stop|status|ctl ARGS... - supervisord for one instance.
#
#   start   run `supervisord -n` in the background, in a session of its own
#           (so stop, or a test, can end it and every program it started),
#           and wait until every program it runs is RUNNING
#   stop    SIGTERM to supervisord: it stops the programs (ingest, then
#           encrypt, then store; each drains and exits 0) and exits; waits
#           for that. Exit status 0 only when every program exited 0.
#   status  `supervisorctl status` (exit 0 when all are RUNNING, 3 when one
#           is not, 4 when supervisord does not answer)
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

# the pid of a live supervisord of this instance, or nothing
live_pid() {
    [ -s "$pidfile" ] || return 1
    _p=$(cat "$pidfile" 2> /dev/null)
    case $_p in '' | *[!0-9]*) return 1 ;; esac
    kill -0 "$_p" 2> /dev/null || return 1
    echo "$_p"
}

# all_running: supervisorctl answers and lists at least one program, each RUNNING
all_running() {
    _st=$(ctl status 2> /dev/null) || return 1
    [ -n "$_st" ] || return 1
    ! printf '%s\n' "$_st" | awk '{ print $2 }' | grep -qv '^RUNNING$'
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
    # a session of its own: supervisord is its leader, and the programs it
    # starts (each in a process group of its own) stay in it
    setsid supervisord -n -c "$conf" < /dev/null > "$run/supervisord.out" 2>&1 &
    n=$((timeout * 10))
    while [ "$n" -gt 0 ]; do
        if all_running; then
            ctl status
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
        ctl status 2>&1 | sed 's/^/    /'
        echo "supervise: $log ends:"
        tail -n 20 "$log" 2> /dev/null | sed 's/^/    /'
        tail -n 20 "$run/supervisord.out" 2> /dev/null | sed 's/^/    /'
    } >&2
    return 1
}

stop() {
    p=$(live_pid) || { echo "supervise: supervisord is not running for $CTXVAULT_HOME"; return 0; }
    mark=$(wc -l < "$log" 2> /dev/null || echo 0)
    kill -TERM "$p" || return 1
    n=$((timeout * 10))
    while [ "$n" -gt 0 ] && kill -0 "$p" 2> /dev/null; do
        sleep 0.1
        n=$((n - 1))
    done
    if kill -0 "$p" 2> /dev/null; then
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
ctl) shift; ctl "$@" ;;
*) die "usage: supervise.sh [--home DIR] start|stop|status|ctl ARGS..." ;;
esac
