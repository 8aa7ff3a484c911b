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
# root's password: the system's /etc/getty.shadow (bound at /hostroot/etc) when there is one, else locked, as
# upstream (INSECURE=true needs none)
if [ -f /hostroot/etc/getty.shadow ]; then
	$bb cp /hostroot/etc/getty.shadow /etc/shadow
	echo >>/etc/shadow # in case the file lacks its final newline
	$bb chmod 600 /etc/shadow
elif [ ! -f /etc/shadow ]; then
	echo "root:*::0:::::" >/etc/shadow
fi
# On TERM (service stop, shutdown) every loop hangs up its login (an interactive shell ignores TERM) and
# ends; then this script ends. The container shares the host's PID namespace: its end does not take the
# other processes with it.
loops=""
for tty in $consoles; do
	[ -c "/dev/$tty" ] || continue
	(
		login=""
		trap '[ -z "$login" ] || kill -HUP "$login" 2>/dev/null; exit 0' TERM
		while :; do
			if [ "${INSECURE:-false}" = "true" ]; then
				$bb setsid -c /bin/sh -l <"/dev/$tty" >"/dev/$tty" 2>&1 &
			else
				$bb getty -L 0 "$tty" vt100 &
			fi
			login=$!
			wait "$login"
			login=""
			$bb sleep 1
		done
	) &
	loops="$loops $!"
done
trap '[ -z "$loops" ] || kill -TERM $loops 2>/dev/null; wait; exit 0' TERM INT
wait
