#!/bin/sh
# format [-type ext4] [-label LABEL] [-partition dos|gpt] [-force] [-verbose] [DEVICE]
# Without DEVICE: the first whole disk of /dev with no partition table and no file system (loop, nbd and
# partition-like names such as sr0 or vda1 are skipped), as upstream. With DEVICE: it is formatted when empty,
# or with -force (its partitions are deleted first); a disk with content is left alone (exit 0).
# One partition spanning the disk, then mkfs on it.
bb=/bin/busybox
fstype=ext4
label=""
parttype=dos
force=""
verbose=""
device=""
usage() {
	echo "usage: format [-type ext4] [-label LABEL] [-partition dos|gpt] [-force] [-verbose] [DEVICE]" >&2
	exit 2
}
while [ $# -gt 0 ]; do
	opt=$1
	# Go's flag package: -name or --name, value as the next word or after '='
	case "$opt" in --*) opt=${opt#-} ;; esac
	case "$opt" in
	-*=*) val=${opt#*=}; opt=${opt%%=*}; hasval=1 ;;
	*) val=""; hasval="" ;;
	esac
	case "$opt" in
	-type | -label | -partition)
		if [ -z "$hasval" ]; then
			[ $# -ge 2 ] || usage
			val=$2
			shift
		fi
		case "$opt" in
		-type) fstype=$val ;;
		-label) label=$val ;;
		-partition) parttype=$val ;;
		esac
		;;
	-force) force=1 ;;
	-verbose | -v) verbose=1 ;;
	-h | -help) usage ;;
	-*) echo "format: unknown flag $1" >&2; usage ;;
	*)
		[ -z "$device" ] || { echo "format: too many arguments" >&2; usage; }
		device=$opt
		;;
	esac
	shift
done
log() { echo "format: $*"; }
vlog() { [ -z "$verbose" ] || log "$@"; }
die() { echo "format: $*" >&2; exit 1; }

case "$fstype" in
ext4) ;;
*) die "unsupported file system type $fstype (this image has mkfs.ext4 only)" ;;
esac
case "$parttype" in
dos | gpt) ;;
*) die "unsupported partition table type $parttype (dos or gpt)" ;;
esac

has_partitions() { /sbin/sfdisk -d "$1" >/dev/null 2>&1; }
has_filesystem() { [ -n "$(/sbin/blkid "$1" 2>/dev/null)" ]; }
is_empty() {
	if has_partitions "$1"; then vlog "$1 has a partition table"; return 1; fi
	if has_filesystem "$1"; then vlog "$1 has content: $(/sbin/blkid "$1")"; return 1; fi
	return 0
}

find_drives() {
	for d in /dev/*; do
		[ -b "$d" ] || continue
		n=${d#/dev/}
		case "$n" in
		loop* | nbd*) vlog "ignored $d"; continue ;;
		esac
		# a name ending in a digit is a partition or a CD-ROM (sr0), as upstream's ^[a-z]+[0-9]+$
		if echo "$n" | $bb grep -qE '^[a-z]+[0-9]+$'; then
			vlog "ignored $d"
			continue
		fi
		echo "$d"
	done
}

partition_of() { # disk -> first partition node
	case "$1" in
	*[0-9]) echo "${1}p1" ;;
	*) echo "${1}1" ;;
	esac
}

format_disk() { # disk
	disk=$1
	if [ -n "$force" ] && has_partitions "$disk"; then
		log "deleting the partitions of $disk (-force)"
		/sbin/sfdisk --quiet --delete "$disk" || die "sfdisk --delete $disk failed"
	fi
	log "creating a $parttype partition table on $disk"
	if [ "$parttype" = gpt ]; then ptype=L; else ptype=83; fi
	echo ",,$ptype;" | /sbin/sfdisk --quiet --wipe always --label "$parttype" "$disk" || die "sfdisk $disk failed"
	$bb blockdev --rereadpt "$disk" 2>/dev/null
	part=$(partition_of "$disk")
	# the host's devtmpfs (bound at /dev) gets the node once the kernel has read the new table
	n=0
	while [ ! -b "$part" ] && [ $n -lt 100 ]; do
		$bb sleep 0.1
		n=$((n + 1))
	done
	[ -b "$part" ] || die "partition $part did not appear"
	log "making an $fstype file system on $part${label:+ (label $label)}"
	/sbin/mkfs.ext4 -q -F ${label:+-L "$label"} "$part" || die "mkfs.ext4 $part failed"
	log "partition $part successfully created"
}

if [ -n "$device" ]; then
	[ -b "$device" ] || die "$device is not a block device"
	if [ -n "$force" ] || is_empty "$device"; then
		format_disk "$device"
	else
		log "$device has content, not formatting it (use -force)"
	fi
	exit 0
fi
for d in $(find_drives); do
	vlog "considering $d"
	if is_empty "$d"; then
		format_disk "$d"
		exit 0
	fi
done
die "no eligible disks found"
