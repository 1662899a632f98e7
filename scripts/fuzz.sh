#!/usr/bin/env bash
# Fuzzes ftune's readers with libFuzzer (harnesses in tests/fuzz; docs/reliability.md).
#
#   scripts/fuzz.sh [SECONDS] [options] [HARNESS...]
#
#   SECONDS        run time per harness (default 60)
#   HARNESS        config dataset model idx csv json safetensors keras (those whose importer
#                  exists); default: all that are built
#   --build DIR    clang build directory (default build-fuzz); configured and built as needed
#                  with -DFTUNE_FUZZ=ON (libFuzzer + ASan + UBSan)
#   --jobs N       parallel fuzzing processes per harness (default 1)
#   --smoke        the ctest check (fuzz.smoke): 4 s per harness, in a scratch corpus
#
# Each harness starts from its committed corpus tests/fuzz/corpus/<name> (read only) and keeps
# what it finds in DIR/corpus/<name>. libFuzzer runs in fork mode: a crash, leak, hang or
# over-limit allocation is saved in DIR/artifacts/<name>/ and fuzzing goes on. Afterwards every
# artifact is replayed and sorted by the first stack frame outside the sanitizer runtime and
# libc: in ftune's code (printed as FTUNE BUG; the script exits 1), in a third-party library
# (HDF5 1.10 crashes and hangs on damaged files: listed in DIR/third-party-<name>.txt), or over
# the RSS limit without an allocation stack (DIR/rss-oom-<name>.txt, to triage by hand).
# Reproduce one with DIR/tests/fuzz/fuzz_<name> FILE. Fixed crashes go into the committed corpus
# as regress-<what>, so that ctest (fuzz.replay.<name>) replays them in every build.
# Exit codes: 0 no finding in ftune, 1 a finding in ftune (or a build failure), 77 clang or
# libFuzzer unavailable.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER=60
BUILD=$SRC/build-fuzz
JOBS=1
SMOKE=0
TIMEOUT=20 # seconds for one input: a hang
WANT=()
while [ $# -gt 0 ]; do
    case $1 in
    --build) BUILD=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --smoke) SMOKE=1; SECONDS_PER=4; TIMEOUT=8; shift ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    [0-9]*) SECONDS_PER=$1; shift ;;
    *) WANT+=("$1"); shift ;;
    esac
done

CC_FUZZ=${CC_FUZZ:-}
if [ -z "$CC_FUZZ" ]; then
    for c in clang clang-18 clang-17 clang-16 clang-15 clang-14; do
        if command -v "$c" >/dev/null 2>&1; then CC_FUZZ=$(command -v "$c"); break; fi
    done
fi
[ -n "$CC_FUZZ" ] || { echo "SKIP: clang not found (Debian: clang)"; exit 77; }
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' >"$probe/p.c"
if ! "$CC_FUZZ" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" 2>/dev/null; then
    echo "SKIP: $CC_FUZZ cannot link -fsanitize=fuzzer (Debian: libclang-rt-dev or clang's" \
        "compiler-rt)"
    exit 77
fi

mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    CC=$CC_FUZZ cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DFTUNE_FUZZ=ON \
        >"$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log"; exit 1; }
fi
# The harnesses CMake knows (a harness whose importer is missing is not a target).
mapfile -t KNOWN < <(cmake --build "$BUILD" --target help 2>/dev/null |
    sed -n 's/^\.\.\. \(fuzz_[a-z0-9]*\)$/\1/p' | grep -v '_replay$' | sed 's/^fuzz_//' | sort)
[ ${#KNOWN[@]} -gt 0 ] || { echo "no fuzz targets in $BUILD (FTUNE_FUZZ off?)"; exit 1; }
if [ ${#WANT[@]} -eq 0 ]; then WANT=("${KNOWN[@]}"); fi
targets=()
for h in "${WANT[@]}"; do
    printf '%s\n' "${KNOWN[@]}" | grep -qx "$h" || { echo "unknown harness '$h' (built: ${KNOWN[*]})"; exit 1; }
    targets+=("fuzz_$h")
done
if ! cmake --build "$BUILD" -j "$(nproc)" --target "${targets[@]}" >"$BUILD/build.log" 2>&1; then
    tail -n 40 "$BUILD/build.log"
    exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$SRC/tests/fuzz/lsan.supp}
export OPENBLAS_NUM_THREADS=1 HDF5_USE_FILE_LOCKING=FALSE
# triage FILE: replays one artifact and prints "ftune <frame>" when the first frame outside the
# sanitizer/libFuzzer runtime and libc is ftune's own code, else "third-party <library> <frame>".
triage() {
    local bin=$1 file=$2
    (cd "$probe" && timeout 120 "$bin" -timeout="$TIMEOUT" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        "$file" 2>&1) | awk -v src="$SRC/" '
        /libFuzzer: out-of-memory \(used:/ { print "rss-oom (no allocation stack: triage by hand)"; found = 1; exit }
        /^ *#[0-9]+ 0x/ {
            loc = $0
            sub(/^ *#[0-9]+ 0x[0-9a-f]+ (in )?/, "", loc)
            if (loc ~ /fuzzer::|__sanitizer|__interceptor|__asan|__ubsan|libc\.so|libstdc\+\+/) next
            if (loc ~ /nptl\/|sysdeps\/|stdlib\/abort|signal\/\.\.\/|^(abort|raise) /) next
            if (loc ~ /^(malloc|calloc|realloc|free|posix_memalign|strdup|strndup) \(/) next
            if (index(loc, src) > 0) { print "ftune " loc; found = 1; exit }
            lib = loc
            if (match(lib, /\/[^\/ ]+\.so[^ +)]*/)) lib = substr(lib, RSTART + 1, RLENGTH - 1)
            print "third-party " lib " " loc; found = 1; exit
        }
        END { if (!found) print "unreproduced" }'
}

rc=0
total=0
for h in "${WANT[@]}"; do
    if [ "$SMOKE" = 1 ]; then
        work=$probe/corpus-$h
        art=$BUILD/artifacts-smoke/$h/
        rm -rf "$art"
    else
        work=$BUILD/corpus/$h
        art=$BUILD/artifacts/$h/
    fi
    mkdir -p "$work" "$art"
    dict=()
    [ -f "$SRC/tests/fuzz/$h.dict" ] && dict=(-dict="$SRC/tests/fuzz/$h.dict")
    log=$BUILD/fuzz-$h.log
    # Fork mode: a crash or hang in one input is recorded and fuzzing goes on, so that the
    # known crashes of a third-party library (HDF5 1.10 on damaged files) do not hide ours.
    args=(-fork="$JOBS" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1
        -max_total_time="$SECONDS_PER" -timeout="$TIMEOUT" -rss_limit_mb=2048 -malloc_limit_mb=1024
        -print_final_stats=1 -artifact_prefix="$art" "${dict[@]}" "$work" "$SRC/tests/fuzz/corpus/$h")
    (cd "$probe" && "$BUILD/tests/fuzz/fuzz_$h" "${args[@]}") >"$log" 2>&1 || true
    execs=$(sed -n 's/^#\([0-9]*\):.*exec\/s.*/\1/p' "$log" | tail -n 1)
    [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    total=$((total + ${execs:-0}))
    ours=0 theirs=0 rss=0
    rm -f "$BUILD/third-party-$h.txt" "$BUILD/rss-oom-$h.txt"
    for a in "$art"*; do
        [ -f "$a" ] || continue
        verdict=$(triage "$BUILD/tests/fuzz/fuzz_$h" "$a" || true)
        case $verdict in
        ftune*) ours=$((ours + 1)); echo "    FTUNE BUG: ${a##*/}: ${verdict#ftune }" ;;
        rss-oom*) rss=$((rss + 1)); echo "    ${a##*/}: $verdict" >>"$BUILD/rss-oom-$h.txt" ;;
        *) theirs=$((theirs + 1)); echo "    ${a##*/}: $verdict" >>"$BUILD/third-party-$h.txt" ;;
        esac
    done
    [ "$ours" = 0 ] || rc=1
    echo "fuzz_$h: ${execs:-?} runs in ${SECONDS_PER} s; findings: $ours in ftune," \
        "$theirs in third-party code ($BUILD/third-party-$h.txt), $rss over the RSS limit" \
        "without a culprit ($BUILD/rss-oom-$h.txt); corpus $(ls "$work" | wc -l)"
done
echo "total: $total runs"
exit $rc
