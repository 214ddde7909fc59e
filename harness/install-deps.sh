#!/bin/sh
# Install every Debian package the project needs: the kernel source, the
# toolchain that builds it, QEMU, libvirt (for tests/e2e/test_libvirt.py, which
# runs its own private libvirtd), the arm64 cross compiler and QEMU (make
# check-arm64), the guest userspace and the plotting tools, the arm64
# guest's static busybox (below), and for make check-compile the 32-bit
# cross compilers: powerpc (32-bit big-endian) and i686.  Debian's kernel
# configurations and Module.symvers, amd64 and arm64, are downloaded by
# the stage itself (harness/check-compile.sh), the archive's newest, not
# installed.
# Idempotent: does nothing when everything is already present.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/harness/lib.sh"

PKGS="linux-source-6.12 build-essential bc bison flex libelf-dev libssl-dev
cpio kmod xz-utils busybox-static qemu-system-x86 qemu-utils python3 python3-ply
python3-git git gnuplot-nox sparse procps rsync
libvirt-daemon-system libvirt-clients
gcc-aarch64-linux-gnu qemu-system-arm
gcc-powerpc-linux-gnu gcc-i686-linux-gnu"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

if [ -z "$missing" ]; then
	echo "deps: all packages present"
else
	echo "deps: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -q
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -q --no-install-recommends $missing
fi

# libvirtd 9.0 does not start without the user libvirt-qemu, even with
# user = "root" in qemu.conf: it looks the user up before it reads
# qemu.conf.  libvirt-daemon-system's postinst creates it; a machine that
# lost it gets it back here.
if ! getent passwd libvirt-qemu >/dev/null; then
	echo "deps: creating the system user libvirt-qemu"
	group=kvm  # as the postinst does
	getent group kvm >/dev/null || group=nogroup
	$SUDO useradd --system --no-create-home --home-dir /var/lib/libvirt \
		--shell /usr/sbin/nologin --comment "Libvirt Qemu" --gid "$group" libvirt-qemu
fi

# The arm64 guest's initramfs needs an arm64 static busybox: Debian's
# busybox-static for arm64, unpacked into build/deps (it cannot be
# installed beside the amd64 one: both are /bin/busybox).  apt-get
# download fetches it once dpkg knows the arm64 architecture.
busybox_arm64=$BUILD/deps/busybox-arm64/bin/busybox
if [ ! -x "$busybox_arm64" ]; then
	echo "deps: fetching busybox-static for arm64 into $BUILD/deps"
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		$SUDO dpkg --add-architecture arm64
		$SUDO apt-get update -q
	fi
	dl=$(mktemp -d)
	# _apt cannot write to a private temporary directory: let it.
	chmod 0777 "$dl"
	(cd "$dl" && apt-get download -q busybox-static:arm64 >/dev/null 2>&1) ||
		{ $SUDO apt-get update -q && (cd "$dl" && apt-get download -q busybox-static:arm64); }
	rm -rf "$BUILD/deps/busybox-arm64"
	mkdir -p "$BUILD/deps/busybox-arm64"
	dpkg-deb -x "$dl"/busybox-static_*_arm64.deb "$BUILD/deps/busybox-arm64"
	rm -rf "$dl"
	[ -x "$busybox_arm64" ] || die "deps: no bin/busybox in Debian's busybox-static:arm64"
fi
