#!/bin/sh
# vm-deps.sh installs the Debian packages the kernel VM harness
# (fixtures/vm) needs: qemu to boot Debian's kernel, a static busybox for the
# guest, dmsetup, e2fsprogs and iproute2 (ip and tc, for the network link
# model) to copy into the initramfs, and qemu-utils for the blklogwrites
# producer; xfsprogs and btrfs-progs for crashtest's xfs and btrfs presets
# (bench/crashtest's TestPresets). It is idempotent: when everything is
# installed it prints nothing and exits 0.
set -eu

pkgs="qemu-system-x86 busybox-static qemu-utils e2fsprogs dmsetup xz-utils xfsprogs btrfs-progs iproute2"

missing=""
for p in $pkgs; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	if [ "$st" != "installed" ]; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "vm-deps.sh: need root to install:$missing" >&2
		exit 1
	fi
else
	SUDO=""
fi

export DEBIAN_FRONTEND=noninteractive
echo "vm-deps.sh: installing$missing" >&2
$SUDO apt-get update -qq >/dev/null
# busybox-static must come without recommends: otherwise it pulls in a large
# set of unrelated packages. The others need none of theirs either.
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
