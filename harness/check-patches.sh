#!/bin/sh
# Review the series the way a maintainer's tools would, printing TAP:
#
#  - checkpatch.pl --strict on every patch: no error, warning or check;
#  - every patch has a Signed-off-by and a subject whose subsystem prefix
#    names what it touches (virtio_balloon: for drivers/virtio/balloon/);
#  - the series applies to the base with git am, patch by patch;
#  - after each patch the kernel builds, and every C file the patch
#    touches compiles with W=1 and sparse (C=2) without a diagnostic.
#
# The build runs in its own worktree (build/linux-bisect, output in
# build/bisect), so the developer's tree is left alone.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/harness/lib.sh"

[ -d "$TREE/.git" ] || die "no tree in $TREE: run 'make tree'"
wt=$BUILD/linux-bisect
out=$BUILD/bisect
log=$BUILD/check-patches.log
: >"$log"
# spdxcheck.py, run by checkpatch, needs Debian's python3 with python3-ply.
PATH=/usr/bin:$PATH
export PATH

patches=$(series_patches)
n=$(echo "$patches" | grep -c . || true)
echo "TAP version 13"
echo "1..$((4 * n + 1))"
t=0

ok() { t=$((t + 1)); echo "ok $t - $*"; }
notok() { t=$((t + 1)); echo "not ok $t - $*"; }

for p in $patches; do
	# FILE_PATH_CHANGES only asks "does MAINTAINERS need updating?" of
	# every patch that adds a file; the next test answers it instead.
	(cd "$TREE" && ./scripts/checkpatch.pl --strict \
		--ignore FILE_PATH_CHANGES "$SERIES_DIR/$p") >"$log.cp" 2>&1 || true
	if grep -q '^total: 0 errors, 0 warnings, 0 checks' "$log.cp"; then
		ok "checkpatch --strict: $p"
	else
		notok "checkpatch --strict: $p"
		grep -E -A3 '^(ERROR|WARNING|CHECK|total)' "$log.cp" | sed 's/^/# /'
	fi
	cat "$log.cp" >>"$log"

	# "[PATCH n/m] prefix: text": the prefix's first word, or that word
	# with _ read as / (virtio_balloon), is part of a path it touches.
	why=""
	subj=$(sed -n 's/^Subject: \[PATCH[^]]*\] //p' "$SERIES_DIR/$p" | head -n 1)
	word=$(echo "$subj" | sed -n 's/^\([A-Za-z0-9_.-]*\)[:/].*/\1/p')
	files=$(sed -n 's|^diff --git a/\([^ ]*\) b/.*|\1|p' "$SERIES_DIR/$p")
	if [ -z "$word" ] || ! echo "$subj" | grep -q '^[^ ]*: '; then
		why="no subsystem prefix in '$subj'"
	elif ! echo "$files" | grep -q -F -e "$word" -e "$(echo "$word" | tr _ /)"; then
		why="prefix '$word' names none of the files it touches"
	fi
	grep -q '^Signed-off-by: .* <.*@.*>$' "$SERIES_DIR/$p" || why="$why${why:+; }no Signed-off-by"
	if [ -z "$why" ]; then
		ok "subsystem prefix and Signed-off-by: $p"
	else
		notok "subsystem prefix and Signed-off-by: $p"
		echo "# $why"
	fi

	# Every file the patch adds is covered by a MAINTAINERS entry.
	orphans=$(awk '/^diff --git /{f=substr($4,3)} /^new file mode/{print f}' \
		"$SERIES_DIR/$p" | while IFS= read -r f; do
			(cd "$TREE" && ./scripts/get_maintainer.pl --no-git \
				--no-rolestats -f "$f" 2>/dev/null) |
				grep -q -v -e 'linux-kernel@vger.kernel.org' \
				-e '^Linus Torvalds' || echo "$f"
		done)
	if [ -z "$orphans" ]; then
		ok "added files have a MAINTAINERS entry: $p"
	else
		notok "added files have a MAINTAINERS entry: $p"
		echo "$orphans" | sed 's/^/# no maintainer: /'
	fi
done

# A fresh worktree at base, so that git am really applies every patch.
if [ -e "$wt/.git" ]; then
	git -C "$wt" am --abort >/dev/null 2>&1 || true
	git -C "$wt" checkout -q --detach base
else
	git -C "$TREE" worktree add -q --detach "$wt" base
fi

applied=1
for p in $patches; do
	if [ "$applied" = 0 ]; then
		notok "builds with W=1: $p # not applied"
		continue
	fi
	if ! git -C "$wt" am -q --3way "$SERIES_DIR/$p" >>"$log" 2>&1; then
		git -C "$wt" am --abort >/dev/null 2>&1 || true
		applied=0
		notok "builds with W=1: $p # does not apply, see $log"
		continue
	fi
	# The project's own options (configs/project.config) that this patch's
	# tree already defines: a KUnit suite is built from the patch that adds it.
	frag=$BUILD/bisect-project.config
	sed -n 's/^CONFIG_\([A-Za-z0-9_]*\)=.*/\1/p' "$top/configs/project.config" |
		while IFS= read -r sym; do
			if git -C "$wt" grep -q "^config $sym\$" -- '*Kconfig*'; then
				grep "^CONFIG_$sym=" "$top/configs/project.config"
			fi
		done >"$frag"
	if ! "$top/harness/build-kernel.sh" "$wt" "$out" "$frag" >>"$log" 2>&1; then
		notok "builds with W=1: $p # build failed, see $log"
		continue
	fi
	# Objects of the C files this patch touches (outside tools/ and
	# Documentation/), rebuilt with extra warnings and checked by sparse.
	objs=$(git -C "$wt" diff --name-only --diff-filter=AM HEAD~1 HEAD -- '*.c' |
		grep -v -e '^tools/' -e '^Documentation/' -e '^scripts/' |
		sed 's/\.c$/.o/' || true)
	diag=""
	for o in $objs; do
		rm -f "$out/$o"
		d=$(make -s -C "$wt" O="$out" ARCH=x86_64 W=1 C=2 "$o" 2>&1 |
			grep -E '(warning|error):' || true)
		diag="$diag$d"
	done
	if [ -z "$diag" ]; then
		ok "builds with W=1: $p"
	else
		notok "builds with W=1: $p"
		echo "$diag" | sed 's/^/# /'
	fi
done
if [ "$applied" = 1 ]; then
	ok "series applies to base $(cat "$SERIES_DIR/BASE") with git am"
else
	notok "series applies to base $(cat "$SERIES_DIR/BASE") with git am"
fi
