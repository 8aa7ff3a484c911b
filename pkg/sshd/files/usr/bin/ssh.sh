#!/bin/sh
# Start dropbear in the foreground: host keys in /run/sshd (made on first start), authorized keys for root from
# /run/config/ssh/authorized_keys unless /root/.ssh/authorized_keys exists (e.g. bound from the host).
# Extra arguments go to dropbear (e.g. -p 2222).
bb=/bin/busybox
keys=/run/sshd
$bb mkdir -p "$keys" && $bb chmod 0700 "$keys" || exit 1
# no RSA key: its generation takes many seconds on an emulated CPU
for t in ed25519 ecdsa; do
	k=$keys/dropbear_${t}_host_key
	[ -s "$k" ] && continue
	/usr/bin/dropbearkey -t "$t" -f "$k.tmp" >/dev/null 2>&1 && $bb mv "$k.tmp" "$k" || {
		echo "sshd: cannot make a $t host key" >&2
		exit 1
	}
done
# busybox applets for login shells (the image has only the binary)
$bb --install -s /usr/local/bin 2>/dev/null
$bb mkdir -p /root/.ssh 2>/dev/null && $bb chmod 0700 /root/.ssh 2>/dev/null
if [ ! -e /root/.ssh/authorized_keys ] && [ -s /run/config/ssh/authorized_keys ]; then
	# fails (and says so) when /root/.ssh is a read-only bind
	$bb cp /run/config/ssh/authorized_keys /root/.ssh/authorized_keys && $bb chmod 0600 /root/.ssh/authorized_keys
fi
[ -s /root/.ssh/authorized_keys ] || echo "sshd: warning: no authorized keys (/run/config/ssh/authorized_keys)" >&2
echo "sshd: dropbear listening on port 22"
# -F foreground, -E log to stderr, -s no password logins (keys only)
exec /usr/sbin/dropbear -F -E -s -r "$keys/dropbear_ed25519_host_key" -r "$keys/dropbear_ecdsa_host_key" \
	-p 22 "$@"
