# Shared helpers for the LinuxKit runc runner (sourced, busybox ash).
#
# Every host path can be redirected for tests: LINUXKIT_ROOT is prepended to /containers, /run, /var/log,
# /sys/fs/cgroup, /proc/cmdline, /dev/console and to absolute paths found in runtime.json. Commands are
# variables because busybox ash runs its own applets before looking at PATH.

LK_ROOT=${LINUXKIT_ROOT:-}
# The OCI runtime: runc when the system has it, else crun (pkg/crun ships this runner with crun), preferably
# from the read-only copy its /etc/init.d/008-crun makes.
if [ -z "${RUNC:-}" ]; then
	for RUNC in /usr/bin/runc /usr/libexec/linuxkit/runtime/crun /usr/bin/crun; do
		[ -x "$RUNC" ] && break
	done
fi
MOUNT=${MOUNT:-mount}
UMOUNT=${UMOUNT:-umount}
IP=${IP:-ip}
LK_JSON_AWK=${LINUXKIT_JSON_AWK:-${LK_LIBDIR:-/usr/libexec/linuxkit}/json.awk}
LK_CONTAINERS=${LINUXKIT_CONTAINERS:-$LK_ROOT/containers}
LK_RUN=${LINUXKIT_RUN:-$LK_ROOT/run}
LK_VARLOG=${LINUXKIT_VARLOG:-$LK_ROOT/var/log}
LK_CGROUP=${LINUXKIT_CGROUP:-$LK_ROOT/sys/fs/cgroup}
LK_CMDLINE=${LINUXKIT_CMDLINE:-$LK_ROOT/proc/cmdline}
LK_CONSOLE=${LINUXKIT_CONSOLE:-$LK_ROOT/dev/console}
LK_PROC=${LINUXKIT_PROC:-/proc}
# field separator of plan records: not whitespace, so empty fields survive `read`
LK_US=$'\037'

# Write a state file so that a reader never sees it empty or half written (temp file + rename).
lk_put() { # file value
	printf '%s\n' "$2" >"$1.$$.tmp" && mv -f "$1.$$.tmp" "$1"
}
LK_TAB=$'\t'
LK_NL='
'
export LC_ALL=C

lk_log() {
	echo "${LK_TAG:-linuxkit}: $*" >&2
}

# a text file to stdout with builtins (no fork: this shows an onboot container's output as it ends)
lk_cat() { # file
	{
		while IFS= read -r _cl; do printf '%s\n' "$_cl"; done
		[ -z "$_cl" ] || printf '%s' "$_cl"
	} 2>/dev/null <"$1" || true
}

# one line on the system console; never fails (the console may be absent in tests)
lk_console() {
	{ echo "${LK_TAG:-linuxkit}: $*" >>"$LK_CONSOLE"; } 2>/dev/null || true
}

# (read and case are builtins: no fork)
lk_cmdline_has() {
	_cl=""
	read -r _cl 2>/dev/null <"$LK_CMDLINE" || [ -n "$_cl" ] || return 1
	case " $_cl " in *" $1 "*) return 0 ;; esac
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
# (sets _abs: a $(...) would fork)
lk_abs() { # bundle path
	case "$2" in
	/*) _abs=$LK_ROOT$2 ;;
	*) _abs=$1/rootfs/$2 ;;
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
	lk_abs "$1" "$4"
	_b=$1 _type=$2 _src=$3 _dest=$_abs _opts=$5
	_rest="" _props="" _bind="" _mk=""
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
			[ "$_k" = lowerdir ] || _mk="$_mk$_v$LK_NL"
			;;
		esac
		_rest="${_rest:+$_rest,}$_o"
	done
	IFS=$_oldifs
	if [ -n "$_mk" ]; then
		# overlay upper and work directories, in one mkdir (every fork counts under emulation)
		_oldifs=$IFS
		IFS=$LK_NL
		set -f
		# shellcheck disable=SC2086 # one argument per line
		set -- $_mk
		set +f
		IFS=$_oldifs
		mkdir -p "$@" || {
			lk_log "cannot create directory for overlay $*"
			return 1
		}
	fi
	[ -d "$_dest" ] || mkdir -p "$_dest" 2>/dev/null || [ -e "$_dest" ] || {
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

# JSON as flat "PATH<TAB>VALUE" records (json.awk: busybox awk, no jq: jq alone costs a large part of a
# second per run under emulation). PATH is a jq path (.mounts[0].options[1], .annotations["a.b"]).
lk_json() { # [awk -v options] file
	awk -f "$LK_JSON_AWK" "$@"
}

# A record value back to the string: json.awk writes \ newline tab CR NUL as \\ \n \t \r \0.
# Sets _lv; a value without a backslash is the string itself (no fork).
lk_unescape() { # value
	case "$1" in
	*\\*) _lv=$(printf '%bx' "$1") && _lv=${_lv%x} ;;
	*) _lv=$1 ;;
	esac
}

# value of PATH in RECORDS (the output of lk_json); "null" (jq's `// ""`) and absent give 1
lk_json_get() { # records path
	while IFS=$LK_TAB read -r _jp _jv; do
		[ "$_jp" = "$2" ] || continue
		[ "$_jv" = null ] && return 1
		lk_unescape "$_jv"
		printf '%s\n' "$_lv"
		return 0
	done <<EOF
$1
EOF
	return 1
}

# The records of a bundle's runtime.json, from ONE awk run per bundle (cached in LK_RT for LK_RT_FOR)
LK_RT_FOR="" LK_RT=""
lk_runtime_records() { # bundle
	[ "$LK_RT_FOR" = "$1" ] && return 0
	LK_RT=""
	if [ -e "$1/runtime.json" ]; then
		LK_RT=$(lk_json -v top=object "$1/runtime.json") || {
			lk_log "cannot parse runtime config $1/runtime.json"
			return 1
		}
	fi
	LK_RT_FOR=$1
}

# Everything the filesystem preparation needs from runtime.json. One record per line, fields separated by US:
# "mount type source destination options", "mkdir path", "cgroup path", "prep true|false" (whether the
# container needs its process prepared: interfaces or bindNS). Cached per bundle in LK_PLAN.
LK_PLAN_FOR="" LK_PLAN=""
lk_runtime_plan() { # bundle
	[ "$LK_PLAN_FOR" = "$1" ] && return 0
	lk_runtime_records "$1" || return 1
	LK_PLAN="" _prep=false _mi="" _mt="" _ms="" _md="" _mo="" _dirs="" _cgs=""
	while IFS=$LK_TAB read -r _rp _rv; do
		[ -n "$_rp" ] || continue
		lk_unescape "$_rv"
		# null is "not set" (jq's `// ""`)
		[ "$_rv" = null ] && _lv=""
		case "$_rp" in
		.mounts | .mkdir | .cgroups | .interfaces)
			# null and [] are "none"; anything else but an array is an error (as jq's `[]` on it)
			case "$_rv" in null | '[]') ;; *)
				lk_log "cannot parse runtime config $1/runtime.json: ${_rp#.} is not an array"
				return 1
				;;
			esac
			;;
		.mounts\[*)
			_i=${_rp#.mounts\[} _f=${_rp#.mounts\[*\]}
			_i=${_i%%\]*}
			if [ "$_i" != "$_mi" ]; then
				[ -n "$_mi" ] && LK_PLAN="$LK_PLAN${LK_PLAN:+$LK_NL}mount$LK_US$_mt$LK_US$_ms$LK_US$_md$LK_US$_mo"
				_mi=$_i _mt="" _ms="" _md="" _mo=""
			fi
			case "$_f" in
			.type) _mt=$_lv ;;
			.source) _ms=$_lv ;;
			.destination) _md=$_lv ;;
			.options\[*\]) _mo=$_mo${_mo:+,}$_lv ;;
			esac
			;;
		.mkdir\[*\]) _dirs="$_dirs${LK_NL}mkdir$LK_US$_lv" ;;
		.cgroups\[*\]) _cgs="$_cgs${LK_NL}cgroup$LK_US$_lv" ;;
		.interfaces\[*) _prep=true ;;
		.bindNS?*) case "$_rv" in '' | null | '{}') ;; *) _prep=true ;; esac ;;
		esac
	done <<EOF
$LK_RT
EOF
	[ -n "$_mi" ] && LK_PLAN="$LK_PLAN${LK_PLAN:+$LK_NL}mount$LK_US$_mt$LK_US$_ms$LK_US$_md$LK_US$_mo"
	LK_PLAN="$LK_PLAN$_dirs$_cgs${LK_NL}prep$LK_US$_prep"
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
				lk_abs "$_pb" "$_a"
				_dir=$_abs
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

# After create (or start), before the workload matters: interfaces (in order) then namespace binds.
lk_prepare_process() { # bundle pid
	lk_runtime_records "$1" || return 1
	_ii="" _in="" _ia="" _ip="" _ir="" _binds=""
	while IFS=$LK_TAB read -r _rp _rv; do
		lk_unescape "$_rv"
		[ "$_rv" = null ] && _lv=""
		case "$_rp" in
		.interfaces\[*)
			_i=${_rp#.interfaces\[} _f=${_rp#.interfaces\[*\]}
			_i=${_i%%\]*}
			if [ "$_i" != "$_ii" ]; then
				if [ -n "$_ii" ]; then lk_interface "$2" "$_in" "$_ia" "$_ip" "$_ir" || return 1; fi
				_ii=$_i _in="" _ia="" _ip="" _ir=false
			fi
			case "$_f" in
			.name) _in=$_lv ;;
			.add) _ia=$_lv ;;
			.peer) _ip=$_lv ;;
			.createInRoot) _ir=${_lv:-false} ;;
			esac
			;;
		.bindNS.*) [ -n "$_lv" ] && _binds="$_binds${_binds:+$LK_NL}${_rp#.bindNS.}$LK_US$_lv" ;;
		esac
	done <<EOF
$LK_RT
EOF
	if [ -n "$_ii" ]; then lk_interface "$2" "$_in" "$_ia" "$_ip" "$_ir" || return 1; fi
	[ -n "$_binds" ] || return 0
	# sorted by namespace gives upstream's order: cgroup ipc mnt net pid user uts
	_binds=$(printf '%s\n' "$_binds" | sort)
	while IFS=$LK_US read -r _ns _np; do
		lk_bind_ns "$2" "$_ns" "$_np" || return 1
	done <<EOF
$_binds
EOF
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
	# (read: no fork, this runs in polling loops)
	# (names of its own: a caller's loop counter must survive)
	_pa_st=""
	while read -r _pa_k _pa_v _; do
		[ "$_pa_k" = State: ] && _pa_st=$_pa_v && break
	done 2>/dev/null <"$LK_PROC/$1/status"
	[ "$_pa_st" != Z ]
}
