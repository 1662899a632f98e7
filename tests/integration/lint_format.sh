#!/usr/bin/env bash
# Lint: every .c/.h under src/ mpi/ include/ tests/ bench/ tools/ is formatted as .clang-format says.
# Usage (ctest): lint_format.sh FTUNE_BIN SOURCE_DIR BUILD_DIR; only SOURCE_DIR is used, and it
# defaults to the repository holding this script. Exit 77 (skipped) when clang-format is absent.
# Fix with `make format`.
set -euo pipefail
src=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$src"

CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
if ! command -v "$CLANG_FORMAT" >/dev/null 2>&1; then
    echo "SKIP: $CLANG_FORMAT not found (Debian: apt-get install clang-format)"
    exit 77
fi

mapfile -t files < <(find src mpi include tests bench tools -type f \( -name '*.c' -o -name '*.h' \) \
    2>/dev/null | LC_ALL=C sort)
bad=()
for f in "${files[@]}"; do
    "$CLANG_FORMAT" --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done

echo "$("$CLANG_FORMAT" --version | head -n1): ${#files[@]} files checked"
if [ ${#bad[@]} -gt 0 ]; then
    echo "FAIL: ${#bad[@]} file(s) not formatted (run 'make format'):"
    printf '  %s\n' "${bad[@]}"
    echo "first differences:"
    "$CLANG_FORMAT" --dry-run "${bad[@]}" 2>&1 | head -n 40 || true
    exit 1
fi
echo "OK"
