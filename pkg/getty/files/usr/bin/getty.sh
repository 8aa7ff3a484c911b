#!/bin/sh
# Start a getty (or, with INSECURE=true, a root shell) on every console= of the kernel command line,
# and keep it running.
bb=/bin/busybox
consoles=""
for arg in $($bb cat /proc/cmdline); do
	case "$arg" in
	console=*) tty="${arg#console=}"; consoles="$consoles ${tty%%,*}" ;;
	esac
done
[ -n "$consoles" ] || consoles="tty0"
$bb mkdir -p /etc
[ -f /etc/passwd ] || echo "root::0:0:root:/root:/bin/sh" > /etc/passwd
[ -f /etc/shadow ] || echo "root::1::::::" > /etc/shadow
for tty in $consoles; do
	[ -c "/dev/$tty" ] || continue
	(
		while :; do
			if [ "${INSECURE:-false}" = "true" ]; then
				$bb setsid $bb cttyhack /bin/sh -l <"/dev/$tty" >"/dev/$tty" 2>&1
			else
				$bb getty -L 0 "$tty" vt100
			fi
			$bb sleep 1
		done
	) &
done
# PID 1 of the container: without a handler TERM would be ignored and `service stop` would wait for its KILL.
# Exiting ends every other process of the container's PID namespace.
trap 'exit 0' TERM INT
wait
