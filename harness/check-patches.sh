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
# The builds start from the upstream kernel's: the patches are applied in
# the upstream worktree (build/linux-base, at base) and built into a copy
# of its objects (build/baseline copied to build/bisect).  At base the
# configuration is the same, so the first build only relinks instead of
# compiling a whole kernel (some 3.5 minutes on 2 cores).  The worktree is
# put back at base afterwards, every file with the mtime it had, so that
# build/baseline stays up to date; make-upstream.sh resets a worktree that
# an interrupted run left elsewhere.  The developer's tree is left alone.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/harness/lib.sh"

[ -d "$TREE/.git" ] || die "no tree in $TREE: run 'make tree'"
wt=$BUILD/linux-base
out=$BUILD/bisect
[ -f "$BUILD/baseline/arch/x86/boot/bzImage" ] ||
	die "no upstream kernel in $BUILD/baseline: run 'make upstream'"
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

# The upstream worktree, clean at base, so that git am really applies
# every patch; its files that the series changes are saved with their
# mtimes, to be put back at the end.
[ -e "$wt/.git" ] || die "no upstream worktree in $wt: run 'make upstream'"
[ "$(git -C "$wt" rev-parse HEAD)" = "$(git -C "$wt" rev-parse base)" ] &&
	[ -z "$(git -C "$wt" status --porcelain --untracked-files=no)" ] ||
	die "$wt is not clean at base: run 'make upstream'"
saved=$BUILD/bisect-saved
rm -rf "$saved" "$out"
mkdir -p "$saved"
for p in $patches; do
	sed -n 's|^diff --git a/\([^ ]*\) b/.*|\1|p' "$SERIES_DIR/$p"
done | sort -u | (cd "$wt" && while IFS= read -r f; do
	if [ -f "$f" ]; then cp --parents -p "$f" "$saved/"; fi
done)
restore_base() {
	git -C "$wt" am --abort >/dev/null 2>&1 || true
	git -C "$wt" checkout -q -f --detach base
	(cd "$saved" && find . -type f) | while IFS= read -r f; do
		cp -p "$saved/$f" "$wt/$f"
	done
}
trap restore_base EXIT
cp -a "$BUILD/baseline" "$out"
# objtool's build records its output directory in its .cmd files: left
# pointing at build/baseline, it relinks objtool, and every object that
# objtool checked is rebuilt.
find "$out/tools" -name '.*.cmd' -exec sed -i "s|$BUILD/baseline/|$out/|g" {} +

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
		diag="$diag${diag:+${d:+
}}$d"
	done
	# Upstream's own files have upstream's diagnostics (sparse's lock
	# context warnings in mm/page_alloc.c, say): there only those on a
	# line this patch adds count.  In a file the series adds, all do.
	added_lines "$wt" HEAD~1 HEAD >"$BUILD/bisect-added"
	git -C "$wt" diff --name-only --diff-filter=A base HEAD >"$BUILD/bisect-new"
	ours=$(echo "$diag" | awk -v wt="$wt/" -v added="$BUILD/bisect-added" \
		-v new="$BUILD/bisect-new" '
		BEGIN { while ((getline l < added) > 0) a[l] = 1
			while ((getline l < new) > 0) n[l] = 1 }
		/^$/ { next }
		{ split($0, f, ":"); path = f[1]; sub("^" wt, "", path)
		  if (f[2] !~ /^[0-9]+$/ || (path in n) || ((path ":" f[2]) in a)) print }')
	upstream=$(echo "$diag" | grep -c . || true)
	upstream=$((upstream - $(echo "$ours" | grep -c . || true)))
	if [ -z "$ours" ]; then
		ok "builds with W=1: $p"
	else
		notok "builds with W=1: $p"
		echo "$ours" | sed 's/^/# /'
	fi
	[ "$upstream" = 0 ] ||
		echo "# $upstream diagnostic(s) of upstream's code in the files it changes, not counted"
done
if [ "$applied" = 1 ]; then
	ok "series applies to base $(cat "$SERIES_DIR/BASE") with git am"
else
	notok "series applies to base $(cat "$SERIES_DIR/BASE") with git am"
fi
