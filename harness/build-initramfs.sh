#!/bin/sh
# Build the guest initramfs: static busybox, /init, the agent, the guest
# test programs (static C) and the balloon kselftests installed from the
# kernel tree.
#
#   build-initramfs.sh OUTPUT.cpio.gz
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/harness/lib.sh"

out=$1
stage=$BUILD/initramfs
busybox=/bin/busybox
[ -x "$busybox" ] && ! readelf -l "$busybox" | grep -q INTERP ||
	die "$busybox is missing or not static: run 'make deps' (busybox-static)"

rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/proc" "$stage/sys" "$stage/dev" "$stage/tmp" \
	"$stage/etc" "$stage/root"
cp "$busybox" "$stage/bin/busybox"
for applet in $("$busybox" --list); do
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
${CC:-gcc} -static -O2 -Wall -Wextra -Werror -o "$stage/bin/balloon-mem" \
	"$top/guest/balloon-mem.c"
${CC:-gcc} -static -O2 -Wall -Wextra -Werror -pthread -o "$stage/bin/pagefault-bench" \
	"$top/guest/pagefault-bench.c"
${CC:-gcc} -static -O2 -Wall -Wextra -Werror -o "$stage/bin/workset" "$top/guest/workset.c"

# The balloon kselftests, installed the kselftest way (run_kselftest.sh
# and kselftest-list.txt), built statically: the guest has no libc.
if [ -d "$TREE/tools/testing/selftests/balloon" ]; then
	make -s -C "$TREE/tools/testing/selftests" TARGETS=balloon \
		O="$BUILD/selftests" KSFT_INSTALL_PATH="$stage/selftests" \
		CFLAGS="-static -O2 -Wall" install >/dev/null
fi

(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
	gzip -9 >"$out.tmp"
mv "$out.tmp" "$out"
info "initramfs: $out ($(du -k "$out" | cut -f1) KiB)"
