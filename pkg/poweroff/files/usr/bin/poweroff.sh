#!/bin/sh
# Ask init (PID 1, busybox init: SIGUSR2 = poweroff) to shut the system down cleanly, after $1 seconds.
delay="${1:-0}"
[ "$delay" -gt 0 ] 2>/dev/null && /bin/busybox sleep "$delay"
echo "poweroff: shutting down"
/bin/busybox kill -USR2 1
