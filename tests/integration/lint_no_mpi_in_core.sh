#!/usr/bin/env bash
# Lint: the compute core (src/, include/ftune/) uses no MPI: no `#include <mpi.h>` and no MPI_*
# identifier outside comments (docs/architecture.md). MPI belongs in mpi/; the core reaches other
# ranks only through callbacks such as ctx->reduce.
# Usage (ctest): lint_no_mpi_in_core.sh FTUNE_BIN SOURCE_DIR BUILD_DIR; only SOURCE_DIR is used.
set -euo pipefail
src=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$src"

mapfile -t files < <(find src include/ftune -type f \( -name '*.c' -o -name '*.h' \
    -o -name '*.h.in' \) | LC_ALL=C sort)
if [ ${#files[@]} -eq 0 ]; then
    echo "FAIL: no sources found under $src/src or $src/include/ftune"
    exit 1
fi

# Strip /* */ and // comments (keeping line numbers) before looking, so that comments may
# mention MPI_Allreduce and the like.
hits=$(perl -ne '
    BEGIN { $in = 0 }
    if ($in) { if (s{^.*?\*/}{}) { $in = 0 } else { $_ = "\n" } }
    s{/\*.*?\*/}{}g;
    if (s{/\*.*$}{}) { $in = 1 }
    s{//.*$}{};
    print "$ARGV:$.: $_" if /#\s*include\s*[<"]mpi\.h[>"]/ || /\bMPI_[A-Za-z0-9_]/;
    if (eof) { close ARGV; $in = 0 }
' "${files[@]}")

if [ -n "$hits" ]; then
    echo "FAIL: MPI used in the compute core (move it to mpi/):"
    echo "$hits"
    exit 1
fi
echo "OK: ${#files[@]} files in src/ and include/ftune/ use no MPI"
