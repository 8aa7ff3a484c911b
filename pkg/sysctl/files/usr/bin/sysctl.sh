#!/bin/sh
# Apply every /etc/sysctl.d/*.conf in name order (or the files given as arguments) with busybox `sysctl -p`.
# busybox goes on after a key the kernel lacks (e.g. IPv6 keys without IPv6); as upstream, that is a warning.
[ $# -gt 0 ] || set -- /etc/sysctl.d/*.conf
for f in "$@"; do
	[ -f "$f" ] || continue
	if /bin/busybox sysctl -q -p "$f"; then
		echo "sysctl: applied $f"
	else
		echo "sysctl: warning: some settings of $f were not applied" >&2
	fi
done
exit 0
