#!/bin/sh
# Compile what the series touches in configurations its users build,
# printing TAP, one test per configuration:
#
#   debian-amd64  Debian's own amd64 configuration (package linux-config-6.12)
#   debian-arm64  Debian's own arm64 configuration (linux-config-6.12:arm64)
#   debian-arm64-16k  Debian's arm64 flavour with 16 KiB pages: 2 MiB is
#                 order 7 there, not 9, and a THP is 32 MiB
#   ppc32         powerpc pmac32_defconfig: 32-bit, big-endian, HIGHMEM, UP;
#                 the driver and every KUnit suite built in (so the hostile
#                 device suite, which has to be built in, is compiled too)
#   i386          i386_defconfig with PAE: 32-bit long, 64-bit phys_addr_t,
#                 SMP; the driver as a module and the options the series'
#                 #ifdefs test off (KUnit, compaction, PM sleep, hugetlb,
#                 VM event counters): the build without the suites
#
# Usage: harness/check-compile.sh [NAME ...]   (default: all five)
#
# Not Debian's rt flavours: their configuration needs Debian's rt patches
# (PREEMPT_DYNAMIC with PREEMPT_RT, PREEMPT_LAZY), which linux-source-6.12
# does not carry, so olddefconfig quietly makes another kernel, whose
# modules need exports Debian's rt kernel does not have
# (klp_sched_try_switch_key for cond_resched()).
#
# For each: the configuration, our options forced on (the driver and its
# KUnit suites as modules where Kconfig allows), make olddefconfig and
# make prepare, then only the objects of the series' C files, rebuilt with
# W=1 and sparse, then the objects that include a header the series
# changes (mm/page_alloc.o, drivers/hv/hv_balloon.o when configured), then
# modpost over the series' objects.  No whole kernel is built.
#
# A test fails on any diagnostic: a gcc or sparse warning or error from
# compiling a series file (wherever it points), a diagnostic pointing into
# a series file while compiling a header user (the header users' own
# upstream warnings are not ours and are only counted), or a modpost
# warning or error about the series' modules or objects.  The diagnostics
# are printed as "# " lines under the test.
#
# modpost: in the Debian configurations it also checks that every symbol
# the modules use is exported to them, against Debian's Module.symvers of
# the same kernel (package linux-headers-<abi>-<arch>), with the exports of
# the series' own built-in objects in place of the ones the series changes,
# and lib/kunit built as a module beside ours (Debian has no KUnit).  In
# ppc32 and i386 there is no symbol list to check against, so only
# unresolved symbols are not reported there.
#
# Environment: TREE (kernel tree with the series, default build/linux, with
# the tag "base"), BUILD (default build/): each configuration builds in
# $BUILD/compile-NAME, kept, so a second run only recompiles the series'
# objects.  JOBS (default 2).  Debian's packages (linux-config-6.12 and
# linux-headers-*, amd64 and arm64) are downloaded with a private apt
# state, so that the machine gets no foreign architecture and nothing is
# installed, and kept in $BUILD/compile-apt.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/harness/lib.sh"

JOBS=${JOBS:-2}
ALL="debian-amd64 debian-arm64 debian-arm64-16k ppc32 i386"
names=${*:-$ALL}
# The kernel's scripts want the system python3.
PATH=/usr/bin:$PATH
export PATH

[ -d "$TREE/.git" ] || [ -f "$TREE/.git" ] || die "no tree in $TREE: run 'make tree'"
git -C "$TREE" rev-parse -q --verify base >/dev/null || die "no tag 'base' in $TREE"

# Files the series changes (ours), the C files among them, and the headers.
touched=$(git -C "$TREE" diff --name-only base HEAD)
ours_c=$(echo "$touched" | grep '\.c$' |
	grep -v -e '^tools/' -e '^Documentation/' -e '^scripts/' || true)
ours_h=$(echo "$touched" | grep '\.h$' | grep -v -e '^tools/' || true)
# Upstream's files (those of the base) and the lines the series adds to
# them (file:line): a diagnostic elsewhere in them is upstream's own
# (sparse's lock-context warnings in mm/page_alloc.c and the headers it
# includes, say).
mkdir -p "$BUILD"
upstream_files=$BUILD/compile-base-files
git -C "$TREE" ls-tree -r --name-only base >"$upstream_files"
added=$BUILD/compile-added
added_lines "$TREE" base HEAD >"$added"

# C files outside the series that include one of the series' headers.
header_users() {
	for h in $ours_h; do
		case $h in
		include/*) pat="<${h#include/}>" ;;
		*) pat="\"$(basename "$h")\"" ;;
		esac
		git -C "$TREE" grep -l -F "#include $pat" -- '*.c' |
			while IFS= read -r f; do
				case $h in
				include/*) echo "$f" ;;
				# A local header: users in its own directory only.
				*) [ "$(dirname "$f")" = "$(dirname "$h")" ] && echo "$f" ;;
				esac
			done
	done | sort -u | while IFS= read -r f; do
		echo "$ours_c" | grep -q -x -F "$f" || echo "$f"
	done
}
users_c=$(header_users)

# The value (y, m or empty) of the option that builds file.c in config
# $1, from the obj-$(CONFIG_X) line naming it in its directory's Makefile
# or its parent's (mm/Makefile names tests/page_reporting_kunit.o); "y"
# when a Makefile names it without an option, empty when none does.
# Objects of composite modules (virtio_balloon-y := core.o ...) are built
# through their directory instead, see targets().
built_as() {
	cfg=$1 f=$2
	case $f in
	*/) d=$(dirname "$f") rel=$(basename "$f")/ ;;
	*) d=$(dirname "$f") rel=$(basename "$f" .c).o ;;
	esac
	for _ in 1 2; do
		mk=$TREE/$d/Makefile
		[ -f "$mk" ] || mk=$TREE/$d/Kbuild
		if [ -f "$mk" ]; then
			# Continuation lines joined: mm/Makefile names swap.o on
			# the third line of its obj-y.
			line=$(sed -e ':a' -e '/\\$/N' -e 's/\\\n//' -e 'ta' "$mk" |
				grep -E "^[a-z0-9_-]+-(\\\$\(CONFIG_[A-Z0-9_]+\)|y)[[:space:]]*[:+]?=(.*[[:space:]])?$rel([[:space:]]|\$)" |
				head -n 1 || true)
			if [ -n "$line" ]; then
				# shellcheck disable=SC2016
				sym=$(echo "$line" | sed -n 's/^[^$]*\$(CONFIG_\([A-Z0-9_]*\)).*/\1/p')
				[ -z "$sym" ] && { echo y; return; }
				sed -n "s/^CONFIG_$sym=\\([ym]\\)\$/\\1/p" "$cfg/.config"
				return
			fi
		fi
		rel=$(basename "$d")/$rel
		d=$(dirname "$d")
	done
}

# Directories the series adds with their own Makefile: built whole.
new_dirs=$(git -C "$TREE" diff --name-only --diff-filter=A base HEAD -- '*/Makefile' |
	grep -v -e '^tools/' -e '^Documentation/' | xargs -r -n1 dirname || true)

in_new_dir() {
	for d in $new_dirs; do
		case $1 in "$d"/*) return 0 ;; esac
	done
	return 1
}

# The make targets for the series' C files in config dir $1: its new
# directories (when the parent Makefile descends into them) and the
# objects of the other files whose option is on.
targets() {
	for d in $new_dirs; do
		[ -n "$(built_as "$1" "$d/")" ] && echo "$d/"
	done
	for f in $ours_c; do
		in_new_dir "$f" && continue
		[ -n "$(built_as "$1" "$f")" ] && echo "${f%.c}.o"
	done
	return 0
}

# The diagnostics (file:line: warning...) of the build log $1, with the
# indented lines after each (sparse's "expected/got", gcc's source
# excerpt): every one ($2 = raw), or the series' own: those in a file
# that is not upstream's or on a line the series adds ($2 = all), or of
# those only the ones pointing into a file the series changes ($2 = ours).
diagnostics() {
	sed "s|^$TREE/||" "$1" | TOUCHED=$touched \
		awk -v mode="$2" -v upstream="$upstream_files" -v addedf="$added" '
		BEGIN { n = split(ENVIRON["TOUCHED"], f, "\n"); for (i = 1; i <= n; i++) ours[f[i]] = 1
			while ((getline l < addedf) > 0) added[l] = 1
			while ((getline l < upstream) > 0) up[l] = 1 }
		/^[^ ]+:[0-9]+(:[0-9]+)?: (warning|error|fatal error):/ {
			split($0, p, ":")
			keep = mode == "raw" || ((mode == "all" || (p[1] in ours)) &&
				!((p[1] in up) && !((p[1] ":" p[2]) in added)))
			if (keep) print
			next
		}
		/^[^ ]+:[0-9]+(:[0-9]+)?:   / { if (keep) print; next }
		/^ / && !/^  [A-Z][A-Z0-9_]* / { if (keep) print; next }
		{ keep = 0 }'
}

apt_dir=$BUILD/compile-apt
# apt-get or apt-cache ($2) with a private state in $apt_dir for
# architecture $1, so that packages of another architecture can be
# downloaded without adding it to the machine (dpkg --add-architecture).
apt_arch() {
	a=$1 tool=$2
	shift 2
	"$tool" -q -o Dir::State::Lists="$apt_dir/$a/lists" -o Dir::Cache="$apt_dir/$a/cache" \
		-o Dir::State::status="$apt_dir/$a/status" -o Debug::NoLocking=1 \
		-o APT::Architecture="$a" -o APT::Architectures::="$a" "$@"
}

# Fetch for architecture $1 Debian's linux-config-6.12 and, for flavour
# $2 (amd64, arm64, arm64-16k), the linux-headers package of the same
# kernel, unpacked in $apt_dir/$1/root; $apt_dir/$1/headers-$2 names that
# package's directory.  Each package in the version of the base
# (series/BASE) when the archive still has it, else the archive's newest:
# the security archive keeps one version of linux-config-6.12, and
# publishes a new one before the headers that go with it (on 2026-12-02
# linux-config-6.12 6.12.118 beside linux-headers 6.12.117), so the two
# may differ.  The archive's lists are read again once a day.
debian_packages() {
	a=$1 fl=$2
	root=$apt_dir/$a/root
	mkdir -p "$apt_dir/$a/lists/partial" "$apt_dir/$a/cache/archives/partial"
	[ -f "$apt_dir/$a/status" ] || : >"$apt_dir/$a/status"
	if [ -z "$(find "$apt_dir/$a/updated" -mmin -1440 2>/dev/null)" ]; then
		apt_arch "$a" apt-get update >"$apt_dir/$a/update.log" 2>&1 ||
			{ info "apt-get update for $a failed, see $apt_dir/$a/update.log"; return 1; }
		: >"$apt_dir/$a/updated"
	fi
	ver=$(debian_version "$a" linux-config-6.12)
	[ -n "$ver" ] || { info "no linux-config-6.12 for $a"; return 1; }
	if [ "$(cat "$apt_dir/$a/version" 2>/dev/null)" != "$ver" ]; then
		rm -rf "${root:?}" "$apt_dir/$a"/headers-* "$apt_dir/$a/version"
		mkdir -p "$root"
		debian_fetch "$a" "linux-config-6.12:$a=$ver" || return 1
		echo "$ver" >"$apt_dir/$a/version"
	fi
	hver=$(debian_version "$a" "linux-headers-6.12-$fl")
	[ -n "$hver" ] || { info "no linux-headers-6.12-$fl for $a"; return 1; }
	[ "$(cat "$apt_dir/$a/headers-$fl.version" 2>/dev/null)" = "$hver" ] &&
		[ -s "$apt_dir/$a/headers-$fl" ] && return 0
	# The meta-package names the ABI of the kernel: linux-headers-6.12.N+debN-FLAVOUR.
	hdr=$(apt_arch "$a" apt-cache show "linux-headers-6.12-$fl=$hver" 2>/dev/null |
		sed -n "s/^Depends:.*\\(linux-headers-[^ ,]*+deb[0-9]*-$fl\\) .*/\\1/p" | head -n 1)
	[ -n "$hdr" ] || { info "no linux-headers-6.12-$fl $hver for $a"; return 1; }
	debian_fetch "$a" "$hdr:$a=$hver" || return 1
	echo "$hdr" >"$apt_dir/$a/headers-$fl"
	echo "$hver" >"$apt_dir/$a/headers-$fl.version"
}

# The version of package $2 to fetch for architecture $1: the base's if
# the archive has it, else the newest it has; empty if it has none.
debian_version() {
	vers=$(apt_arch "$1" apt-cache madison "$2" 2>/dev/null |
		awk -F'|' '{ gsub(/ /, "", $2); print $2 }')
	base=$(cat "$SERIES_DIR/BASE")
	if echo "$vers" | grep -qxF "$base"; then
		echo "$base"
	else
		echo "$vers" | sort -V -r | head -n 1
	fi
}

# Download package $2 for architecture $1 and unpack it in its root.
debian_fetch() {
	(cd "$apt_dir/$1" && apt_arch "$1" apt-get download "$2") >>"$apt_dir/$1/download.log" 2>&1 ||
		{ info "apt-get download $2 failed, see $apt_dir/$1/download.log"; return 1; }
	for deb in "$apt_dir/$1"/*.deb; do
		dpkg-deb -x "$deb" "$apt_dir/$1/root"
	done
	rm -f "$apt_dir/$1"/*.deb
}

# Our options, for scripts/config, as Kconfig allows them in a distribution:
# the driver and its suites as modules (KUnit too: Debian has none, a
# distribution that ships the suites ships KUnit as a module): modpost
# then checks the symbols the hostile device suite needs exported.
MODULES_OPTS="--module KUNIT --module VIRTIO_BALLOON
	--module VIRTIO_BALLOON_KUNIT_TEST --module PAGE_REPORTING_KUNIT_TEST
	--module VIRTIO_BALLOON_HOSTILE_KUNIT_TEST
	--enable PAGE_REPORTING --enable COMPACTION --enable MIGRATION
	--enable BALLOON_COMPACTION --enable DEBUG_FS"
# Everything built in, the hostile device suite included.
BUILTIN_OPTS="--enable KUNIT --enable VIRTIO_MENU --enable PCI
	--enable VIRTIO_PCI --enable VIRTIO_MMIO --enable VIRTIO_BALLOON
	--enable VIRTIO_BALLOON_KUNIT_TEST --enable VIRTIO_BALLOON_HOSTILE_KUNIT_TEST
	--enable PAGE_REPORTING_KUNIT_TEST --enable PAGE_REPORTING --enable COMPACTION
	--enable MIGRATION --enable BALLOON_COMPACTION --enable DEBUG_FS"

# The driver as a module and nothing else, the way a distribution that
# does not ship the suites builds it, with what the series' #ifdefs
# depend on off: no KUnit (so mm/page_reporting.c without its test hooks),
# no compaction (no balloon page migration), no suspend or hibernation,
# no hugetlbfs, no VM event counters.  HIGHMEM64G is PAE: a 64-bit
# phys_addr_t with a 32-bit long.
MINIMAL_OPTS="--disable NOHIGHMEM --disable HIGHMEM4G --enable HIGHMEM64G
	--enable VIRTIO_MENU --enable PCI --module VIRTIO_PCI --module VIRTIO_BALLOON
	--enable PAGE_REPORTING --disable KUNIT --disable COMPACTION
	--disable BALLOON_COMPACTION --disable SUSPEND --disable HIBERNATION
	--disable PM_SLEEP --disable HUGETLBFS --disable HUGETLB_PAGE --enable EXPERT
	--disable VM_EVENT_COUNTERS --disable MEMORY_HOTPLUG"

t=0
ok() { t=$((t + 1)); echo "ok $t - $*"; }
notok() { t=$((t + 1)); echo "not ok $t - $*"; }

# One configuration: name, ARCH, CROSS_COMPILE, how to get the config,
# the options; prints its TAP line and diagnostics.
check_config() {
	name=$1 arch=$2 cross=$3 base_cfg=$4 opts=$5 desc=$6
	out=$BUILD/compile-$name
	log=$out/compile.log
	mkdir -p "$out"
	: >"$log"
	start=$(date +%s)
	mk() { make -C "$TREE" O="$out" ARCH="$arch" ${cross:+CROSS_COMPILE=$cross} "$@"; }
	if [ -n "$cross" ] && ! command -v "${cross}gcc" >/dev/null 2>&1; then
		notok "$desc # ${cross}gcc not found: make deps"
		return
	fi

	case $base_cfg in
	debian:*)
		# debian:ARCH:FLAVOUR; an "rt-" flavour is the rt featureset's.
		a=${base_cfg#debian:}
		fl=${a#*:}
		a=${a%%:*}
		case $fl in
		rt-*) file=config.${a}_rt_${fl#rt-}.xz ;;
		*) file=config.${a}_none_$fl.xz ;;
		esac
		if ! debian_packages "$a" "$fl" >&2; then
			notok "$desc # Debian's packages for $fl could not be fetched"
			return
		fi
		xz=$apt_dir/$a/root/usr/src/linux-config-6.12/$file
		[ -f "$xz" ] || { notok "$desc # no $file in linux-config-6.12"; return; }
		hdr=$(cat "$apt_dir/$a/headers-$fl")
		symvers=$apt_dir/$a/root/usr/src/$hdr/Module.symvers
		origin="$file of linux-config-6.12 $(cat "$apt_dir/$a/version"), Module.symvers of $hdr $(cat "$apt_dir/$a/headers-$fl.version")"
		[ -f "$symvers" ] || { notok "$desc # no $symvers"; return; }
		xzcat "$xz" >"$out/.config.new"
		;;
	*)
		mk -s "$base_cfg" >>"$log" 2>&1
		cp "$out/.config" "$out/.config.new"
		origin="$base_cfg of the tree"
		symvers=
		;;
	esac
	# Module signing: Debian signs with its own keys (debian/certs), which
	# are not here; nothing is signed, the objects we build are unchanged.
	# BTF: Debian's DEBUG_INFO_BTF needs pahole (dwarves) and only acts
	# when vmlinux and modules are linked, which never happens here.
	# WERROR (i386_defconfig has it): any warning fails the test anyway,
	# and without it the build goes on and shows every one.
	# shellcheck disable=SC2086
	"$TREE/scripts/config" --file "$out/.config.new" \
		--set-str SYSTEM_TRUSTED_KEYS "" --set-str SYSTEM_REVOCATION_KEYS "" \
		--disable MODULE_SIG_ALL --disable DEBUG_INFO_BTF --disable WERROR $opts
	# Kconfig rewrites only what changed: with the same configuration as
	# the last run, make prepare has nothing to do.
	mv "$out/.config.new" "$out/.config"
	if ! mk -s olddefconfig >>"$log" 2>&1; then
		notok "$desc # olddefconfig failed"
		tail -n 20 "$log" | sed 's/^/# /'
		return
	fi
	# The options that did not stick (Kconfig dependencies) fail the test.
	lost=$(for o in $opts; do
		case $o in --*) mode=$o; continue ;; esac
		want=y
		[ "$mode" = --module ] && want=m
		[ "$mode" = --disable ] && want=
		v=$(sed -n "s/^CONFIG_$o=\\(.*\\)/\\1/p" "$out/.config")
		# A tristate asked as a module may be y when something built in
		# selects it.
		[ "$v" = "$want" ] || { [ "$want" = m ] && [ "$v" = y ]; } || echo "CONFIG_$o=${v:-n}"
	done)
	if [ -n "$lost" ]; then
		notok "$desc # options did not stick"
		echo "$lost" | sed 's/^/# wanted, but: /'
		return
	fi
	t_cfg=$(date +%s)
	# W=1 here too: the objects prepare builds (arm64's vDSO) then keep
	# their flags and are not rebuilt, nor checked, with ours below.
	if ! mk -s -j"$JOBS" W=1 prepare >>"$log" 2>&1; then
		notok "$desc # make prepare failed, see $log"
		tail -n 20 "$log" | sed 's/^/# /'
		return
	fi
	t_prep=$(date +%s)

	tg=$(targets "$out")
	# Remove the objects first: an object that is up to date is not
	# compiled, and its warnings would not be seen again.  Sparse then
	# runs with C=1, on exactly the objects compiled: with C=2 it would
	# also check what make visits on the way (arm64's vDSO, upstream's).
	for x in $tg; do
		case $x in
		*/) find "$out/$x" -name '*.o' -delete 2>/dev/null || true ;;
		*) rm -f "$out/$x" ;;
		esac
	done
	ours_log=$out/compile-ours.log
	rc=0
	# shellcheck disable=SC2086
	mk -j"$JOBS" W=1 C=1 $tg >"$ours_log" 2>&1 || rc=$?
	cat "$ours_log" >>"$log"
	diag=$(diagnostics "$ours_log" all)
	if [ "$rc" != 0 ] && [ -z "$diag" ]; then
		diag=$(grep -v '^  [A-Z]' "$ours_log" | tail -n 20)
	fi

	# Header users: only diagnostics pointing into series files are ours.
	uo=""
	for f in $users_c; do
		[ -n "$(built_as "$out" "$f")" ] && uo="$uo ${f%.c}.o"
	done
	users_log=$out/compile-users.log
	: >"$users_log"
	upstream=0
	if [ -n "$uo" ]; then
		for x in $uo; do rm -f "$out/$x"; done
		rc=0
		# shellcheck disable=SC2086
		mk -j"$JOBS" W=1 C=1 $uo >"$users_log" 2>&1 || rc=$?
		cat "$users_log" >>"$log"
		d=$(diagnostics "$users_log" ours)
		[ "$rc" != 0 ] && [ -z "$d" ] && d=$(grep -v '^  [A-Z]' "$users_log" | tail -n 20)
		diag="$diag${diag:+${d:+
}}$d"
	fi
	# What the logs hold beyond what counted: upstream's own diagnostics.
	upstream=$(cat "$ours_log" "$users_log" | diagnostics /dev/stdin raw |
		grep -c -E '^[^ ]+:[0-9]+' || true)
	upstream=$((upstream - $(echo "$diag" | grep -c -E '^[^ ]+:[0-9]+' || true)))
	t_build=$(date +%s)

	mp=$(modpost_check)
	diag="$diag${diag:+${mp:+
}}$mp"
	end=$(date +%s)

	tgs=$(echo "$tg" | tr '\n' ' ' | sed 's/ $//')
	uos=${uo# }
	what="$tgs +$(echo "$uos" | wc -w) header user(s)"
	times="config $((t_cfg - start)) s, prepare $((t_prep - t_cfg)) s, compile $((t_build - t_prep)) s, modpost $((end - t_build)) s: $((end - start)) s"
	if [ -z "$diag" ]; then
		ok "$desc"
	else
		notok "$desc"
		echo "$diag" | sed 's/^/# /'
	fi
	echo "# $name: $origin"
	echo "# $name: $what${uos:+ ($uos)}"
	[ "$upstream" -gt 0 ] &&
		echo "# $name: $upstream diagnostic(s) of upstream's code, not counted"
	echo "# $name: $times (log: $log)"
	return 0
}

# modpost over the series' objects of the configuration in $out: the
# built-in ones linked into a stand-in vmlinux.o (section mismatches, and
# the exports our modules use), the modules with their .mod files, and in
# Debian configurations Debian's Module.symvers for everything else.
# Prints modpost's diagnostics about the series' code.
modpost_check() {
	order=$out/compile-modules.order
	: >"$order"
	builtin=""
	for x in $tg; do
		case $x in
		*/)
			[ -f "$out/${x}modules.order" ] && cat "$out/${x}modules.order" >>"$order"
			[ -f "$out/${x}built-in.a" ] &&
				builtin="$builtin $(ar t "$out/${x}built-in.a" | tr '\n' ' ')"
			;;
		*)
			case $(built_as "$out" "${x%.o}.c") in
			m)
				mk -s "${x%.o}.mod" >>"$log" 2>&1
				echo "$x" >>"$order"
				;;
			y) builtin="$builtin $x" ;;
			esac
			;;
		esac
	done
	mods=$(grep -c . "$order" || true)
	args="-M -E -W -o $out/compile-modpost.symvers"
	grep -q '^CONFIG_MODVERSIONS=y' "$out/.config" && args="$args -m"
	if [ -n "$symvers" ] && [ "$mods" -gt 0 ]; then
		# Debian's list, less what the base exported from the files the
		# series changes (their exports now come from our objects).
		for f in $ours_c; do
			git -C "$TREE" show "base:$f" 2>/dev/null |
				sed -n 's/^EXPORT_[A-Z_]*SYMBOL[A-Z_]*(\([A-Za-z0-9_]*\).*/\1/p'
		done | sort -u >"$out/compile-replaced.syms"
		awk 'NR == FNR { drop[$1] = 1; next } !($2 in drop)' \
			"$out/compile-replaced.syms" "$symvers" >"$out/compile-debian.symvers"
		args="$args -i $out/compile-debian.symvers"
		# Debian has no KUnit: lib/kunit beside ours, kunit.ko as a
		# module and its built-in hooks (kunit_running) in vmlinux.
		if grep -q '^CONFIG_KUNIT=m' "$out/.config"; then
			mk -s -j"$JOBS" lib/kunit/ >>"$log" 2>&1
			cat "$out/lib/kunit/modules.order" >>"$order"
			[ -f "$out/lib/kunit/built-in.a" ] &&
				builtin="$builtin $(ar t "$out/lib/kunit/built-in.a" | tr '\n' ' ')"
		fi
	else
		# Nothing to resolve the kernel's symbols against.
		args="$args -w"
	fi
	rm -f "$out/vmlinux.o" "$out/.vmlinux.objs"
	if [ -n "$builtin" ]; then
		# shellcheck disable=SC2086
		(cd "$out" && "${cross}ld" -r -o vmlinux.o $builtin)
		# modpost reads the version CRCs of vmlinux's objects from the
		# objects this lists.
		# shellcheck disable=SC2086
		printf '%s\n' $builtin >"$out/.vmlinux.objs"
		args="$args vmlinux.o"
	fi
	[ "$mods" -gt 0 ] && args="$args -T compile-modules.order"
	[ "$mods" -gt 0 ] || [ -n "$builtin" ] || return 0
	sed -i "s|^$out/||" "$order"
	# shellcheck disable=SC2086
	(cd "$out" && scripts/mod/modpost $args) >"$out/compile-modpost.log" 2>&1 || true
	cat "$out/compile-modpost.log" >>"$log"
	# Our modules and objects; lib/kunit and the stand-in vmlinux's
	# unresolved symbols are not the series'.
	# modpost names the stand-in vmlinux "vmlinux.o" or "vmlinux": only
	# the series' objects are in it.
	pat=$( (echo "$tg" | sed 's|/$||; s|\.o$||'; echo vmlinux) | tr '\n' '|' | sed 's/|$//')
	grep -E "$pat" "$out/compile-modpost.log" |
		if [ -n "$symvers" ]; then cat; else grep -v ' undefined!$'; fi |
		grep -v -e '\[vmlinux\] undefined!$' -e '^lib/kunit' || true
	# A modpost run that stopped on an error about nothing of ours.
	grep -E '^(ERROR|FATAL): modpost: ' "$out/compile-modpost.log" |
		grep -v -E "$pat" | grep -v -e 'undefined!$' -e 'Section mismatches' | head -n 5 || true
}

echo "TAP version 13"
echo "1..$(echo "$names" | wc -w)"
for n in $names; do
	case $n in
	debian-amd64)
		check_config "$n" x86_64 "" debian:amd64:amd64 "$MODULES_OPTS" \
			"debian amd64 (Debian's config, driver and suites as modules)"
		;;
	debian-arm64)
		check_config "$n" arm64 aarch64-linux-gnu- debian:arm64:arm64 "$MODULES_OPTS" \
			"debian arm64 (Debian's config, driver and suites as modules)"
		;;
	debian-arm64-16k)
		check_config "$n" arm64 aarch64-linux-gnu- debian:arm64:arm64-16k "$MODULES_OPTS" \
			"debian arm64 16K pages (Debian's config, driver and suites as modules)"
		;;
	ppc32)
		check_config "$n" powerpc powerpc-linux-gnu- pmac32_defconfig "$BUILTIN_OPTS" \
			"powerpc 32-bit big-endian (pmac32_defconfig, all built in)"
		;;
	i386)
		check_config "$n" i386 i686-linux-gnu- i386_defconfig "$MINIMAL_OPTS" \
			"i386 32-bit PAE (i386_defconfig, driver as a module, no KUnit, compaction, PM sleep)"
		;;
	*)
		notok "$n # unknown configuration (known: $ALL)"
		;;
	esac
done
