#!/bin/sh
# busybox httpd in the foreground on port ${1:-80}, serving /var/www; one log line per request on stderr.
# httpd runs as a child: as the container's PID 1 it would ignore the TERM of `service stop`.
port=${1:-80}
echo "httpd: serving /var/www on port $port"
/bin/busybox httpd -f -vv -p "$port" -h /var/www &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' TERM INT
wait $pid
# a trapped signal ends `wait` early: collect httpd's status
wait $pid
