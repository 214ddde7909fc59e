#!/bin/sh
# Write the commits of the kernel tree (base..HEAD) back into series/:
# one git format-patch file per commit, the order file series/series and
# the cover letter, whose subject and text come from series/cover-letter.txt.
#
# The output depends only on the commits (no commit ids, dates of the
# export, no git version, fixed-length blob ids), so exporting an unchanged tree changes
# nothing in git.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/harness/lib.sh"

[ -d "$TREE/.git" ] || die "no tree in $TREE: run 'make tree'"
cd "$TREE"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
	die "$TREE has uncommitted changes: commit them (git commit -s) first"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

n=$(git rev-list --count base..HEAD)
if [ "$n" -gt 0 ]; then
	# format-patch dates the cover letter with the current time: give it
	# the author date of the newest commit instead, which git am keeps.
	GIT_COMMITTER_DATE=$(git log -1 --format=%aD HEAD) \
	git -c core.abbrev=12 format-patch -q --zero-commit --no-signature --cover-letter --base=base \
		--subject-prefix=PATCH -o "$tmp" base..HEAD
	cover="$tmp/0000-cover-letter.patch"
	subject=$(head -n 1 "$SERIES_DIR/cover-letter.txt")
	awk -v subject="$subject" -v blurb="$SERIES_DIR/cover-letter.txt" '
		/\*\*\* SUBJECT HERE \*\*\*/ { sub(/\*\*\* SUBJECT HERE \*\*\*/, subject) }
		/^\*\*\* BLURB HERE \*\*\*$/ {
			getline line < blurb	# the subject line
			getline line < blurb	# the blank line after it
			while ((getline line < blurb) > 0)
				print line
			next
		}
		{ print }' "$cover" >"$cover.new"
	mv "$cover.new" "$cover"
fi

find "$SERIES_DIR" -maxdepth 1 -name '*.patch' -delete
{
	echo "# Patches of the series, applied in this order by make tree."
	for p in "$tmp"/*.patch; do
		[ -e "$p" ] || continue
		name=$(basename "$p")
		cp "$p" "$SERIES_DIR/$name"
		[ "$name" = 0000-cover-letter.patch ] || echo "$name"
	done
} >"$SERIES_DIR/series"
record_sync
info "export: $n patch(es) written to series/"
