#!/bin/sh
# Install every Debian package the project needs: the kernel source, the
# toolchain that builds it, QEMU, the guest userspace and the plotting tools.
# Idempotent: does nothing when everything is already present.
set -eu

PKGS="linux-source-6.12 build-essential bc bison flex libelf-dev libssl-dev
cpio kmod xz-utils busybox-static qemu-system-x86 qemu-utils python3 python3-ply
python3-git git gnuplot-nox sparse procps rsync"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "deps: all packages present"
	exit 0
fi

echo "deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
