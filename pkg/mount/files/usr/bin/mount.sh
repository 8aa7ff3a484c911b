#!/bin/sh
# mount [-label LABEL | -uuid UUID | -device DEVICE] MOUNTPOINT, or mount DEVICE MOUNTPOINT.
# Without a device: the first partition of the first disk with a partition table that is not mounted yet.
bb=/bin/busybox
device=""
label=""
uuid=""
args=""
usage() {
	echo "usage: mount [-label LABEL | -uuid UUID | -device DEVICE] MOUNTPOINT" >&2
	exit 2
}
die() { echo "mount: $*" >&2; exit 1; }
nargs=0
while [ $# -gt 0 ]; do
	opt=$1
	case "$opt" in --*) opt=${opt#-} ;; esac
	case "$opt" in
	-device=* | -label=* | -uuid=*) val=${opt#*=}; opt=${opt%%=*} ;;
	-device | -label | -uuid) [ $# -ge 2 ] || usage; val=$2; shift ;;
	-h | -help) usage ;;
	-*) echo "mount: unknown flag $1" >&2; usage ;;
	*) val="" ;;
	esac
	case "$opt" in
	-device) device=$val ;;
	-label) label=$val ;;
	-uuid) uuid=$val ;;
	*)
		nargs=$((nargs + 1))
		[ $nargs -le 2 ] || { echo "mount: too many arguments" >&2; usage; }
		[ $nargs -eq 1 ] && arg1=$opt
		[ $nargs -eq 2 ] && arg2=$opt
		;;
	esac
	shift
done
case $nargs in
0) echo "mount: no mount point given" >&2; usage ;;
1) mountpoint=$arg1 ;;
2) device=$arg1; mountpoint=$arg2 ;;
esac

is_mounted() { $bb grep -q "^$1 " /proc/mounts; }

# partitions (nodes with a trailing digit whose disk has a partition table), in /dev order
first_free_partition() {
	for d in /sys/class/block/*; do
		[ -e "$d/partition" ] || continue
		p=/dev/${d##*/}
		[ -b "$p" ] || continue
		is_mounted "$p" && { echo "mount: $p already mounted, skipping" >&2; continue; }
		echo "$p"
		return 0
	done
	return 1
}

# the kernel may still be reading a new disk: look for a label/uuid for a few seconds
wait_findfs() { # LABEL=x | UUID=x
	n=0
	while [ $n -lt 50 ]; do
		dev=$($bb findfs "$1" 2>/dev/null) && { echo "$dev"; return 0; }
		$bb sleep 0.1
		n=$((n + 1))
	done
	return 1
}

if [ -n "$label" ]; then
	device=$(wait_findfs "LABEL=$label") || die "no device with label $label"
elif [ -n "$uuid" ]; then
	device=$(wait_findfs "UUID=$uuid") || die "no device with UUID $uuid"
elif [ -z "$device" ]; then
	device=$(first_free_partition) || die "no unmounted partition found"
fi
[ -b "$device" ] || die "$device is not a block device"
$bb mkdir -p "$mountpoint" || die "cannot create mount point $mountpoint"
$bb mount "$device" "$mountpoint" || die "cannot mount $device on $mountpoint"
echo "mount: mounted $device on $mountpoint"
