#!/bin/sh
# swap.sh --path /var/FILE --size SIZE [--encrypt] [--condition COND]... [--debug]
# SIZE: bytes, or a number with K, M or G. COND: part:PATH[:required] (PATH is a mount point of its own) or
# partsize:PATH:SIZE[:required] (the file system holding PATH has at least SIZE). A condition not met: no swap,
# exit 0, or exit 1 when it is marked required (`true`). The file is (re)made when missing or of another size;
# --encrypt maps it to /dev/mapper/swapfile with a random key (plain dm-crypt, aes-cbc-essiv:sha256), so what
# is swapped out cannot be read after a reboot. As upstream's swap.sh.
set -e
path=""
size=""
encrypt=""
conditions=""
while [ $# -ge 1 ]; do
	case "$1" in
	--debug) set -x ;;
	--path) path=$2; shift ;;
	--size) size=$2; shift ;;
	--encrypt) encrypt=true ;;
	--condition) conditions="$conditions $2"; shift ;;
	*) echo "Unknown option passed to swapmaker: $1"; exit 1 ;;
	esac
	shift
done

# bytes of SIZE (K, M, G suffixes) divided by BLOCKSIZE
disksize_to_count() {
	case "$2" in
	*G) n=$((${2%G} * 1024 * 1024 * 1024)) ;;
	*M) n=$((${2%M} * 1024 * 1024)) ;;
	*K) n=$((${2%K} * 1024)) ;;
	*) n=$2 ;;
	esac
	echo $((n / $1))
}

[ -n "$path" ] || { echo "swap: --path <path> must be defined"; exit 1; }
case "$path" in
/var/?*) ;;
*) echo "swap: --path <path> must be under /var"; exit 1 ;;
esac
[ -n "$size" ] || { echo "swap: --size <size> must be defined"; exit 1; }
case "$size" in
*[!0-9KMG]* | [KMG]* | *[KMG]?*) echo "swap: bad --size $size (bytes, or a number with K, M or G)"; exit 1 ;;
esac

unmet() { # required?
	if [ "$1" = true ]; then echo "swap: required condition $cond not met"; exit 1; fi
	echo "swap: condition $cond not met: no swap file"
	exit 0
}
for cond in $conditions; do
	IFS=: read -r condtype arg1 arg2 arg3 <<EOC
$cond
EOC
	case "$condtype" in
	part)
		# a mount point of its own
		awk -v p="$arg1" '$2 == p { found = 1 } END { exit !found }' /proc/mounts || unmet "$arg2"
		;;
	partsize)
		have=$(($(df -k "$arg1" | tail -n 1 | awk '{print $2}') * 1024))
		[ "$have" -ge "$(disksize_to_count 1 "$arg2")" ] || unmet "$arg3"
		;;
	*) echo "Unknown condition: $cond"; exit 1 ;;
	esac
done

if [ "$encrypt" = true ]; then
	swapdev=/dev/mapper/swapfile
else
	swapdev=$path
fi
count=$(disksize_to_count 1 "$size")
if [ ! -f "$path" ] || [ "$(stat -c %s "$path")" != "$count" ]; then
	bs=1048576
	[ "$count" -ge "$bs" ] || bs=1024
	echo "swap: creating $path of $size"
	dd if=/dev/zero of="$path" bs=$bs count="$(disksize_to_count $bs "$size")" 2>/dev/null
	chmod 0600 "$path"
	if [ "$encrypt" = true ]; then
		mkdir -p /run/cryptsetup
		cryptsetup open --type plain --key-file /dev/urandom --key-size=256 --cipher=aes-cbc-essiv:sha256 \
			--offset=0 "$path" swapfile
	fi
	mkswap "$swapdev" >/dev/null
elif [ "$encrypt" = true ]; then
	# a file kept from an earlier boot: new random key, so it is formatted again
	mkdir -p /run/cryptsetup
	cryptsetup open --type plain --key-file /dev/urandom --key-size=256 --cipher=aes-cbc-essiv:sha256 \
		--offset=0 "$path" swapfile
	mkswap "$swapdev" >/dev/null
fi
swapon "$swapdev"
echo "swap: enabled $swapdev ($size)"
