#!/bin/sh
# Prepare the kernel source tree the series is developed in.
#
# build/linux becomes a git repository whose first commit ("baseline") is
# Debian's linux-source-6.12 exactly as shipped, tagged "base".  The series
# in series/ is then applied on top with git am, one commit per patch, on
# the branch "series".  An existing tree is left alone unless REBUILD=1.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/harness/lib.sh"

tree=$TREE
tarball=/usr/src/linux-source-6.12.tar.xz
want=$(cat "$top/series/BASE")

have=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || true)
if [ "$have" != "$want" ]; then
	warn "installed linux-source-6.12 is '${have:-not installed}', the series was last tested on '$want'"
fi

if [ -d "$tree/.git" ] && [ "${REBUILD:-0}" != 1 ]; then
	cd "$tree"
	if [ "$(series_sum)" = "$(cat .git/series-sum 2>/dev/null)" ]; then
		info "tree: $tree is up to date with series/"
		exit 0
	fi
	# series/ changed (a pull, a checkout).  Re-apply it, but only if the
	# tree holds nothing that series/ does not: no edits, no new commits.
	if [ "$(git rev-parse HEAD)" != "$(cat .git/series-head 2>/dev/null)" ] ||
	   [ -n "$(git status --porcelain --untracked-files=no)" ]; then
		die "series/ changed and $tree has unexported work: 'make export' it, or REBUILD=1 make tree to discard it"
	fi
	info "tree: series/ changed, re-applying it on base"
	git reset -q --hard base
	apply_series
	record_sync
	exit 0
fi

[ -f "$tarball" ] || die "$tarball missing: run 'make deps'"

rm -rf "$tree" "$tree.tmp"
mkdir -p "$tree.tmp"
info "tree: extracting $(basename "$tarball") ($have) ..."
tar -xJf "$tarball" -C "$tree.tmp"
mv "$tree.tmp/linux-source-6.12" "$tree"
rmdir "$tree.tmp"

cd "$tree"
# Debian's tarball ends .gitignore with a block that ignores everything at
# the top level (it is meant for the packaging repository).  Drop it, or
# new files of the series could not be added.
sed -i '/^# Debian packaging: ignore everything/,$d' .gitignore

git init -q -b series
git_identity
# The baseline commit writes ~86,000 loose objects; git am would then start
# an automatic repack in the background that competes with the kernel
# build for the two cores for minutes.
git config gc.auto 0
info "tree: recording the baseline commit (about a minute) ..."
git add -A -f
# Dated by the package's changelog and by a fixed name: the same package
# makes the same commit on every machine, so the base-commit line that
# make export writes into the cover letter names it everywhere.
stamp=$(zcat /usr/share/doc/linux-source-6.12/changelog.Debian.gz |
	sed -n 's/^ -- .*>  //p' | head -n 1)
GIT_AUTHOR_DATE=$stamp GIT_COMMITTER_DATE=$stamp \
GIT_AUTHOR_NAME="virtio-balloon series builder" GIT_AUTHOR_EMAIL=balloon-series@localhost \
GIT_COMMITTER_NAME="virtio-balloon series builder" GIT_COMMITTER_EMAIL=balloon-series@localhost \
git commit -q --no-verify -m "baseline: Debian linux-source-6.12 $have" \
	-m "Unmodified source of Debian's linux-source-6.12 package, except for
the top-level .gitignore block that ignores everything."
git tag base

apply_series
record_sync
