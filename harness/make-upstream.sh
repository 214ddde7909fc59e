#!/bin/sh
# Build the upstream kernel every comparison is made against: the unpatched
# base (tag "base" of the tree), checked out as a worktree in
# build/linux-base and built with the same configuration as the project's
# kernel into build/baseline (the directory keeps its first name).  Prints
# the bzImage path.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/harness/lib.sh"

src=$BUILD/linux-base
[ -d "$TREE/.git" ] || die "no tree in $TREE: run 'make tree'"
if [ ! -e "$src/.git" ]; then
	info "upstream: checking out base into $src ..."
	git -C "$TREE" worktree add -q --detach "$src" base
fi
# check-patches.sh applies the series in this worktree and puts it back
# at base; a run that was interrupted may have left it elsewhere.
if [ "$(git -C "$src" rev-parse HEAD)" != "$(git -C "$src" rev-parse base)" ] ||
	[ -n "$(git -C "$src" status --porcelain --untracked-files=no)" ]; then
	warn "upstream: $src was not clean at base; resetting it"
	git -C "$src" am --abort >/dev/null 2>&1 || true
	git -C "$src" checkout -q -f --detach base
fi
"$top/harness/build-kernel.sh" "$src" "$BUILD/baseline"
