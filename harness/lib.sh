# Shared helpers for the harness shell scripts.  Source it; do not run it.
# shellcheck shell=sh

: "${top:?lib.sh needs \$top}"
BUILD=${BUILD:-$top/build}
TREE=${TREE:-$BUILD/linux}
SERIES_DIR=$top/series

info() { printf '%s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# Commits made in the tree need an identity; fall back to a project one on
# machines where git has none configured.
git_identity() {
	git config user.name >/dev/null 2>&1 ||
		git config user.name "virtio-balloon series builder"
	git config user.email >/dev/null 2>&1 ||
		git config user.email "balloon-series@localhost"
}

# The lines that commits $2..$3 of the tree in $1 add, as path:line: a
# compiler's diagnostic in an upstream file is the series' own only on
# one of them (check-patches.sh, check-compile.sh).
added_lines() {
	git -C "$1" diff -U0 "$2" "$3" | awk '
		/^\+\+\+ b\// { f = substr($2, 3); next }
		/^@@/ { split($3, r, ","); n = (r[2] == "" ? 1 : r[2])
			for (i = 0; i < n; i++) print f ":" substr(r[1], 2) + i }'
}

# Patch files of the series, in order (series/series lists them).
series_patches() {
	sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$SERIES_DIR/series"
}

# Apply series/ on top of the base commit in the current directory (the tree).
apply_series() {
	n=$(series_patches | wc -l)
	info "tree: applying $n patch(es) from series/"
	series_patches | while read -r p; do
		[ -f "$SERIES_DIR/$p" ] || die "series/series names $p, which does not exist"
		if ! git am -q --3way --keep-cr "$SERIES_DIR/$p" >&2; then
			# Leave the tree at base, marked in sync with nothing,
			# so that the next make tree tries again.
			git am --abort >/dev/null 2>&1 || true
			git reset -q --hard base
			git rev-parse HEAD >.git/series-head
			rm -f .git/series-sum
			die "series/$p does not apply to the base $(git log -1 --format=%s base | sed 's/.*linux-source-6.12 //') (series tested on $(cat "$SERIES_DIR/BASE")); fix it in the tree or rebase the series"
		fi
	done
}

# A checksum of everything in series/ that make tree applies.
series_sum() {
	(cd "$SERIES_DIR" && cat series $(series_patches)) | md5sum | cut -d' ' -f1
}

# Remember that the tree's HEAD is exactly series/ as it is now (after
# make tree applied it, or after make export wrote it).
record_sync() {
	series_sum >"$TREE/.git/series-sum"
	git -C "$TREE" rev-parse HEAD >"$TREE/.git/series-head"
}
