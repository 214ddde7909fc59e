#!/bin/sh
# Build the guest initramfs: static busybox, /init, the agent, the guest
# test programs (static C) and the balloon kselftests installed from the
# kernel tree.
#
#   [ARCH=arm64] build-initramfs.sh OUTPUT.cpio.gz
#
# ARCH=arm64 builds the arm64 guest's (build/initramfs-arm64.cpio.gz):
# Debian's arm64 busybox-static (harness/install-deps.sh unpacks it into
# build/deps), the C programs cross-compiled with CROSS_COMPILE (default
# aarch64-linux-gnu-).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/harness/lib.sh"

out=$1
case ${ARCH:-x86_64} in
x86_64 | x86)
	stage=$BUILD/initramfs
	busybox=/bin/busybox
	cc=${CC:-gcc}
	ksft_out=$BUILD/selftests
	;;
arm64)
	stage=$BUILD/initramfs-arm64
	busybox=$BUILD/deps/busybox-arm64/bin/busybox
	cc=${CROSS_COMPILE:-aarch64-linux-gnu-}gcc
	ksft_out=$BUILD/selftests-arm64
	;;
*)
	die "ARCH=$ARCH: only x86_64 and arm64 guests are built"
	;;
esac
[ -x "$busybox" ] && ! readelf -l "$busybox" | grep -q INTERP ||
	die "$busybox is missing or not static: run 'make deps' (busybox-static)"
# The applets, from the host's busybox: the arm64 one does not run here,
# and Debian builds both from the same source and configuration.
[ -x /bin/busybox ] || die "/bin/busybox is missing: run 'make deps' (busybox-static)"

rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/proc" "$stage/sys" "$stage/dev" "$stage/tmp" \
	"$stage/etc" "$stage/root"
cp "$busybox" "$stage/bin/busybox"
for applet in $(/bin/busybox --list); do
	[ -e "$stage/bin/$applet" ] || ln -s busybox "$stage/bin/$applet"
done
# kselftest scripts start with #!/usr/bin/env or #!/bin/bash.  /usr/bin
# is a directory of its own, not a link to /bin: the kselftest runner uses
# /usr/bin/timeout --foreground when it exists, which busybox cannot do.
mkdir -p "$stage/usr/bin"
ln -s ../../bin/busybox "$stage/usr/bin/env"
ln -s busybox "$stage/bin/bash"
ln -s bin "$stage/sbin"

install -m 0755 "$top/guest/init" "$stage/init"
install -m 0755 "$top/guest/agent" "$top/guest/run-selftests" "$stage/bin/"
"$cc" -static -O2 -Wall -Wextra -Werror -o "$stage/bin/balloon-mem" \
	"$top/guest/balloon-mem.c"
"$cc" -static -O2 -Wall -Wextra -Werror -pthread -o "$stage/bin/pagefault-bench" \
	"$top/guest/pagefault-bench.c"
"$cc" -static -O2 -Wall -Wextra -Werror -o "$stage/bin/workset" "$top/guest/workset.c"

# The balloon kselftests, installed the kselftest way (run_kselftest.sh
# and kselftest-list.txt), built statically: the guest has no libc.
if [ -d "$TREE/tools/testing/selftests/balloon" ]; then
	make -s -C "$TREE/tools/testing/selftests" TARGETS=balloon CC="$cc" \
		O="$ksft_out" KSFT_INSTALL_PATH="$stage/selftests" \
		CFLAGS="-static -O2 -Wall" install >/dev/null
fi

(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
	gzip -9 >"$out.tmp"
mv "$out.tmp" "$out"
info "initramfs: $out ($(du -k "$out" | cut -f1) KiB)"
