# Shared helpers for the LinuxKit runc runner (sourced, busybox ash).
#
# Every host path can be redirected for tests: LINUXKIT_ROOT is prepended to /containers, /run, /var/log,
# /sys/fs/cgroup, /proc/cmdline, /dev/console and to absolute paths found in runtime.json. Commands are
# variables because busybox ash runs its own applets before looking at PATH.

LK_ROOT=${LINUXKIT_ROOT:-}
RUNC=${RUNC:-/usr/bin/runc}
MOUNT=${MOUNT:-mount}
UMOUNT=${UMOUNT:-umount}
IP=${IP:-ip}
JQ=${JQ:-jq}
LK_CONTAINERS=${LINUXKIT_CONTAINERS:-$LK_ROOT/containers}
LK_RUN=${LINUXKIT_RUN:-$LK_ROOT/run}
LK_VARLOG=${LINUXKIT_VARLOG:-$LK_ROOT/var/log}
LK_CGROUP=${LINUXKIT_CGROUP:-$LK_ROOT/sys/fs/cgroup}
LK_CMDLINE=${LINUXKIT_CMDLINE:-$LK_ROOT/proc/cmdline}
LK_CONSOLE=${LINUXKIT_CONSOLE:-$LK_ROOT/dev/console}
LK_PROC=${LINUXKIT_PROC:-/proc}
# field separator for jq output: not whitespace, so empty fields survive `read`
LK_US=$(printf '\037')
export LC_ALL=C

lk_log() {
	echo "${LK_TAG:-linuxkit}: $*" >&2
}

# one line on the system console; never fails (the console may be absent in tests)
lk_console() {
	{ echo "${LK_TAG:-linuxkit}: $*" >>"$LK_CONSOLE"; } 2>/dev/null || true
}

lk_cmdline_has() {
	[ -r "$LK_CMDLINE" ] || return 1
	for _w in $(cat "$LK_CMDLINE"); do
		[ "$_w" = "$1" ] && return 0
	done
	return 1
}

# runc with --debug when the kernel command line asks for it
lk_runc() {
	if lk_cmdline_has linuxkit.runc_debug=1; then
		"$RUNC" --debug "$@"
	else
		"$RUNC" "$@"
	fi
}

# monotonic-enough clock in centiseconds (from /proc/uptime; date has only whole seconds)
lk_now_cs() {
	awk '{ printf "%d\n", $1 * 100 }' "$LK_PROC/uptime"
}

# absolute paths are host paths (prefixed for tests); relative ones are inside the bundle rootfs
lk_abs() { # bundle path
	case "$2" in
	/*) echo "$LK_ROOT$2" ;;
	*) echo "$1/rootfs/$2" ;;
	esac
}

lk_is_propagation() {
	case "$1" in
	shared | rshared | private | rprivate | slave | rslave | unbindable | runbindable) return 0 ;;
	esac
	return 1
}

# Mount one runtime.json mount. Propagation flags are applied with separate calls, because the kernel
# ignores them when combined with other flags (upstream's "remount,private" relies on that order).
lk_mount_one() { # bundle type source destination options(comma separated)
	_b=$1 _type=$2 _src=$3 _dest=$(lk_abs "$1" "$4") _opts=$5
	_rest="" _props="" _bind=""
	_oldifs=$IFS
	IFS=,
	for _o in $_opts; do
		if lk_is_propagation "$_o"; then
			_props="$_props $_o"
			continue
		fi
		case "$_o" in
		bind | rbind) _bind=1 ;;
		lowerdir=* | upperdir=* | workdir=*)
			# absolute overlay layer paths are host paths; upper/work must exist before mounting
			_k=${_o%%=*} _v=${_o#*=}
			case "$_v" in /*) _v=$LK_ROOT$_v ;; esac
			_o="$_k=$_v"
			if [ "$_k" != lowerdir ]; then
				mkdir -p "$_v" || {
					IFS=$_oldifs
					lk_log "cannot create directory for overlay $_o"
					return 1
				}
			fi
			;;
		esac
		_rest="${_rest:+$_rest,}$_o"
	done
	IFS=$_oldifs
	mkdir -p "$_dest" 2>/dev/null || [ -e "$_dest" ] || {
		lk_log "cannot create directory for mount destination $_dest"
		return 1
	}
	if [ -n "$_bind" ]; then
		case "$_src" in /*) _src=$LK_ROOT$_src ;; esac
	fi
	# a bare "remount" carrying only propagation flags needs no remount call
	if [ -n "$_type" ] || [ -n "$_src" ] || { [ -n "$_rest" ] && [ "$_rest" != remount ]; }; then
		set -- "$MOUNT"
		[ -n "$_type" ] && set -- "$@" -t "$_type"
		[ -n "$_rest" ] && set -- "$@" -o "$_rest"
		[ -n "$_src" ] && set -- "$@" "$_src"
		set -- "$@" "$_dest"
		"$@" || {
			lk_log "failed to mount ${_src:-$_dest} on $_dest (type ${_type:-none}, options ${_rest:-none})"
			return 1
		}
	fi
	for _p in $_props; do
		"$MOUNT" "--make-$_p" "$_dest" || {  # busybox: -o private would look the path up in fstab
			lk_log "failed to make $_dest $_p"
			return 1
		}
	done
	return 0
}

lk_cgroup_v2() {
	[ -e "$LK_CGROUP/cgroup.controllers" ]
}

lk_new_cgroup() { # path
	if lk_cgroup_v2; then
		mkdir -p "$LK_CGROUP/$1" || lk_log "cgroup error: cannot create $LK_CGROUP/$1"
		return 0
	fi
	for _d in "$LK_CGROUP"/*/; do
		[ -d "$_d" ] || continue
		mkdir -p "$_d$1" || lk_log "cgroup error: cannot create $_d$1"
	done
	return 0
}

lk_runtime() { # bundle jq-filter
	[ -e "$1/runtime.json" ] || return 0
	"$JQ" -r "$2" "$1/runtime.json"
}

# Everything the filesystem preparation needs from runtime.json, from ONE jq run (each run of jq costs
# a good fraction of a second under emulation). One record per line, fields separated by US:
# "mount type source destination options", "mkdir path", "cgroup path", "prep true|false" (whether the
# container needs its process prepared: interfaces or bindNS). Cached per bundle in LK_PLAN.
LK_PLAN_FOR="" LK_PLAN=""
lk_runtime_plan() { # bundle
	[ "$LK_PLAN_FOR" = "$1" ] && return 0
	LK_PLAN=""
	if [ -e "$1/runtime.json" ]; then
		LK_PLAN=$("$JQ" -r 'if type != "object" then error("runtime config is not an object") else
			((.mounts // [])[] | ["mount", .type // "", .source // "", .destination // "",
				((.options // []) | join(","))] | join("\u001f")),
			((.mkdir // [])[] | "mkdir\u001f" + .),
			((.cgroups // [])[] | "cgroup\u001f" + .),
			("prep\u001f" + ((((.interfaces // []) | length > 0) or
				(((.bindNS // {}) | to_entries | map(select(.value != null and .value != "")) | length) > 0))
				| tostring))
			end' "$1/runtime.json" 2>/dev/null) || {
			lk_log "cannot parse runtime config $1/runtime.json"
			return 1
		}
	fi
	LK_PLAN_FOR=$1
}

# Mounts (before mkdir, so a directory can be created under a mount), mkdir, cgroups: all before create.
lk_prepare_filesystem() { # bundle
	_pb=$1
	lk_runtime_plan "$_pb" || return 1
	for _pass in mount mkdir cgroup; do
		while IFS=$LK_US read -r _kind _a _b _c _d; do
			[ "$_kind" = "$_pass" ] || continue
			case "$_kind" in
			mount) lk_mount_one "$_pb" "$_a" "$_b" "$_c" "$_d" || return 1 ;;
			mkdir)
				_dir=$(lk_abs "$_pb" "$_a")
				mkdir -p "$_dir" || {
					lk_log "cannot create directory $_dir"
					return 1
				}
				;;
			cgroup) lk_new_cgroup "$_a" ;;
			esac
		done <<EOF
$LK_PLAN
EOF
	done
	return 0
}

# Does this bundle need the process before it runs (interfaces, bindNS)?
lk_needs_process_prep() { # bundle
	lk_runtime_plan "$1" 2>/dev/null || return 1
	case "$LK_PLAN" in
	*"prep${LK_US}true"*) return 0 ;;
	esac
	return 1
}

lk_ip_is_iproute2() {
	"$IP" -V 2>/dev/null | grep -q iproute2
}

# one runtime.json interface: create (veth or generic type) and/or move into the container's netns
lk_interface() { # pid name add peer createInRoot
	_pid=$1 _name=$2 _add=$3 _peer=$4
	if [ -z "$_name" ]; then
		lk_log "interface requires a name"
		return 1
	fi
	[ -n "$_peer" ] && [ -z "$_add" ] && _add=veth
	if [ -n "$_add" ]; then
		if [ "$_add" = veth ]; then
			if [ -z "$_peer" ]; then
				lk_log "creating a veth pair $_name requires a peer to be set"
				return 1
			fi
			if ! lk_ip_is_iproute2; then
				lk_log "UNSUPPORTED interface type veth for $_name: busybox ip cannot create veth pairs" \
					"(install iproute2's ip in the runc image)"
				return 1
			fi
			"$IP" link add "$_name" type veth peer name "$_peer" || {
				lk_log "link add $_name of type veth failed"
				return 1
			}
		else
			# created in the root namespace then moved: same result as creating it inside the netns
			"$IP" link add "$_name" type "$_add" || {
				lk_log "link add $_name of type $_add failed (type may be unsupported by this ip/kernel)"
				return 1
			}
		fi
		lk_log "created interface $_name type $_add"
	fi
	"$IP" link set "$_name" netns "$_pid" || {
		lk_log "cannot move interface $_name into namespace of pid $_pid"
		return 1
	}
	lk_log "moved interface $_name to pid $_pid"
}

# bind-mount one namespace of pid at path
lk_bind_ns() { # pid ns path
	_path=$LK_ROOT$3
	mkdir -p "$(dirname "$_path")" || {
		lk_log "cannot create leading directories for $_path"
		return 1
	}
	[ -e "$_path" ] || : >"$_path" || {
		lk_log "cannot create a mount point for namespace bind at $_path"
		return 1
	}
	"$MOUNT" -o bind "$LK_PROC/$1/ns/$2" "$_path" || {
		lk_log "failed to bind $2 namespace at $_path"
		return 1
	}
}

# After create (or start), before the workload matters: interfaces then namespace binds.
lk_prepare_process() { # bundle pid
	_ifs=$(lk_runtime "$1" '.interfaces[]? | [.name // "", .add // "", .peer // "",
		(.createInRoot // false | tostring)] | join("\u001f")') || return 1
	if [ -n "$_ifs" ]; then
		while IFS=$LK_US read -r _in _ia _ip _ir; do
			lk_interface "$2" "$_in" "$_ia" "$_ip" "$_ir" || return 1
		done <<EOF
$_ifs
EOF
	fi
	# sorted keys give upstream's order: cgroup ipc mnt net pid user uts
	_binds=$(lk_runtime "$1" '(.bindNS // {}) | to_entries | sort_by(.key)[] |
		select(.value != null and .value != "") | "\(.key)\u001f\(.value)"') || return 1
	if [ -n "$_binds" ]; then
		while IFS=$LK_US read -r _ns _np; do
			lk_bind_ns "$2" "$_ns" "$_np" || return 1
		done <<EOF
$_binds
EOF
	fi
	return 0
}

# best effort, as upstream: unmount the bundle's rootfs
lk_cleanup() { # bundle
	"$UMOUNT" "$1/rootfs" 2>/dev/null || true
}

# alive and not a zombie (a container process reparented to init may linger as a zombie briefly)
lk_pid_alive() { # pid
	[ -n "$1" ] || return 1
	kill -0 "$1" 2>/dev/null || return 1
	_st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "$LK_PROC/$1/status" 2>/dev/null)
	[ "$_st" != Z ]
}
