"""Shell snippets the controller runs on a device that may have no Python (POSIX sh, toybox/busybox tools).

Each is a fixed script; paths travel as arguments ("$@"), never spliced into the script text.
"""

from __future__ import annotations

# $1: 1 to hash; then paths. Prints {path: [size, sha256 or null] or null} as deploy's Python snippet does.
STAT = r"""
full=$1; shift; out=
for p in "$@"; do
  k=$(printf '%s' "$p" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
  if [ -f "$p" ]; then
    size=$(wc -c <"$p" | tr -d ' ')
    h=null
    if [ "$full" = 1 ]; then
      h=$(sha256sum "$p" 2>/dev/null || toybox sha256sum "$p") || exit 3
      h="\"${h%% *}\""
    fi
    v="[$size, $h]"
  else
    v=null
  fi
  out="${out:+$out, }\"$k\": $v"
done
echo "{$out}"
"""

# $1: library directory to make (atomically); then pairs NAME TARGET: NAME -> TARGET symlinks inside it.
LIBDIR = r"""
d=$1; shift
[ -d "$d" ] && { echo ready; exit 0; }
t="$d.tmp.$$"
rm -rf "$t"; mkdir -p "$t" || exit 3
while [ $# -ge 2 ]; do ln -s "$2" "$t/$1" || exit 3; shift 2; done
mv "$t" "$d" 2>/dev/null || { rm -rf "$t"; [ -d "$d" ] || exit 3; }
echo ready
"""
