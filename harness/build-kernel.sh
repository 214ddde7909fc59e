#!/bin/sh
# Build the guest kernel from a source tree into an output directory.
#
#   [ARCH=arm64] build-kernel.sh SRC OUT [EXTRA_FRAGMENT...]
#
# ARCH is x86_64 (the default: arch/x86/boot/bzImage) or arm64 (cross-built
# with CROSS_COMPILE, default aarch64-linux-gnu-: arch/arm64/boot/Image).
# The configuration is tinyconfig plus configs/guest.config (plus any extra
# fragments).  Builds are out of tree (O=OUT) and incremental: the config is
# regenerated only when a fragment changed.  Prints the image's path.
#
# With CONFIG_MODULES=y the modules are built too (so modpost checks every
# build) and installed, stripped, into OUT/modules.cpio.gz: a cpio archive
# holding /lib/modules/RELEASE, which the harness appends to the initramfs
# of a VM booting this kernel (balloon_harness/paths.py, initrd()).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/harness/lib.sh"

src=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
shift 2
frags="$top/configs/guest.config $*"
jobs=${JOBS:-$(nproc)}
case ${ARCH:-x86_64} in
x86_64 | x86)
	kmake="make ARCH=x86_64"
	target=bzImage
	image=arch/x86/boot/bzImage
	;;
arm64)
	kmake="make ARCH=arm64 CROSS_COMPILE=${CROSS_COMPILE:-aarch64-linux-gnu-}"
	target=Image
	image=arch/arm64/boot/Image
	;;
*)
	die "ARCH=$ARCH: only x86_64 and arm64 guests are built"
	;;
esac

[ -f "$src/Makefile" ] || die "$src is not a kernel tree: run 'make tree'"

# Regenerate .config when any fragment is newer than it (or it is missing).
stamp="$out/.config-fragments"
want=$(cat $frags | md5sum | cut -d' ' -f1)
# Options of the fragments missing from .config: a build of an older tree
# in the same output directory (syncconfig) drops options it does not know.
# A later fragment overrides an earlier one (as merge_config.sh does): only
# an option's last value counts, "# CONFIG_X is not set" included (shown
# as CONFIG_X=n; it sticks when .config does not set the option).
missing_options() {
	cat $frags | sed -n -e 's/^\(CONFIG_[A-Za-z0-9_]*\)=\(.*\)$/\1=\2/p' \
		-e 's/^# \(CONFIG_[A-Za-z0-9_]*\) is not set$/\1=n/p' |
		awk -F= '!($1 in v) { order[++n] = $1 } { v[$1] = $0 }
			END { for (i = 1; i <= n; i++) print v[order[i]] }' |
		while IFS= read -r line; do
			case $line in
			*=n) ! grep -q "^${line%=n}=" "$out/.config" || echo "$line" ;;
			*) grep -qxF "$line" "$out/.config" || echo "$line" ;;
			esac
		done
}
if [ ! -f "$out/.config" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] ||
	[ -n "$(missing_options)" ]; then
	info "kernel: configuring $out (tinyconfig + $(for f in $frags; do basename "$f"; done | tr '\n' ' '))"
	$kmake -s -C "$src" O="$out" tinyconfig >/dev/null
	"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" $frags >/dev/null
	$kmake -s -C "$src" O="$out" olddefconfig >/dev/null
	# merge_config.sh only warns about options that did not stick: fail.
	missing=$(missing_options)
	[ -z "$missing" ] || die "kernel: options did not stick (unmet dependencies?): $missing"
	echo "$want" >"$stamp"
fi

targets=$target
modules=
grep -qx 'CONFIG_MODULES=y' "$out/.config" && modules=y && targets="$target modules"

info "kernel: building $out with $jobs jobs ..."
start=$(date +%s)
# Kbuild's quiet output, reduced to a progress line every 250 steps; any
# other line (warnings, errors) is shown as it comes.
status=$(mktemp)
{ $kmake -C "$src" O="$out" -j"$jobs" --no-print-directory \
	${KBUILD_EXTRA:-} $targets 2>&1; echo $? >"$status"; } |
	awk -v start="$start" '
		/^  [A-Z0-9_]+ +[^ ]/ {
			if (++n % 250 == 0) {
				printf "kernel: %5d steps, %d s\n", n, systime() - start
				fflush()
			}
			next
		}
		{ print; fflush() }' >&2
rc=$(cat "$status")
rm -f "$status"
[ "$rc" = 0 ] || die "kernel: build of $out failed (make exit $rc)"
if [ -n "$modules" ]; then
	# A fresh install each time: no module of an earlier configuration stays.
	rm -rf "$out/modules-root"
	$kmake -s -C "$src" O="$out" INSTALL_MOD_PATH="$out/modules-root" \
		INSTALL_MOD_STRIP=1 DEPMOD=/sbin/depmod modules_install >/dev/null ||
		die "kernel: modules_install of $out failed"
	rm -f "$out"/modules-root/lib/modules/*/build
	(cd "$out/modules-root" && find . | LC_ALL=C sort |
		cpio -o -H newc --quiet -R 0:0) | gzip -9 >"$out/modules.cpio.gz.tmp"
	mv "$out/modules.cpio.gz.tmp" "$out/modules.cpio.gz"
	info "kernel: modules: $(cd "$out/modules-root" && find . -name '*.ko' | wc -l) in $out/modules.cpio.gz"
else
	rm -rf "$out/modules-root" "$out/modules.cpio.gz"
fi
info "kernel: built in $(( $(date +%s) - start )) s: $out/$image"
echo "$out/$image"
