#!/bin/sh
# qemu-ga.sh [QEMU-GA OPTIONS]: the guest agent on the virtio-serial port the host named org.qemu.guest_agent.0
# (found in /sys/class/virtio-ports: its /dev/vportNpM number depends on the VM's other virtio devices), else on
# upstream's /dev/vport0p1.
SYS=${SYS:-/sys}
port=/dev/vport0p1
for f in "$SYS"/class/virtio-ports/*/name; do
	[ -r "$f" ] || continue
	read -r name <"$f" || continue
	if [ "$name" = org.qemu.guest_agent.0 ]; then
		f=${f%/name}
		port=/dev/${f##*/}
		break
	fi
done
echo "qemu-ga: channel $port"
exec ${QEMU_GA:-/usr/bin/qemu-ga} -p "$port" "$@"
