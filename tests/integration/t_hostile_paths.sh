#!/usr/bin/env bash
# Paths in configs are used as given, never through a shell, and outputs go only where the
# config says (run.dir, -o):
#  - no system(), popen() or exec*() anywhere in src/ or mpi/ (a source check);
#  - data.train, run.dir and -o names full of shell syntax ($(...), `...`, ;, |, spaces) are
#    taken literally: nothing they would run happens, the files get exactly those names;
#  - a training run writes only under run.dir (checked by listing every file of the test
#    directory, the working directory included); `ftune eval`/`inspect` write nothing;
#  - run.dir = "../escape" is the config asking for ../escape (relative to the working
#    directory, docs/config.md): the run writes there and nowhere else;
#  - a layer name cannot carry a path ("../x" is refused by the config check).
# Usage (ctest): t_hostile_paths.sh FTUNE_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"
ft_init "$@"

# ---- no shell anywhere -------------------------------------------------------------------------
hits=$(grep -rnE '(^|[^_a-zA-Z0-9])(system|popen|execl|execlp|execle|execv|execvp|execvpe|posix_spawnp?)[[:space:]]*\(' \
    "$SRC/src" "$SRC/mpi" --include='*.c' --include='*.h' | grep -vE ':[0-9]+:[[:space:]]*(/?\*|//)' || true)
[ -z "$hits" ] || fail "process-spawning calls in ftune's sources: $hits"
[ -n "$hits" ] || note "ok: no system/popen/exec/posix_spawn in src/ or mpi/"

mkdir -p cwd data
make_data data/d.h5 64 16 4 51
cd cwd
evil='$(touch PWNED1)`touch PWNED2`;touch PWNED3|touch PWNED4 && x'
write_mlp_cfg mlp.cfg "$TMP/out/run $evil" "$TMP/data/d.h5"
base=(--set train.max_steps=2 --set checkpoint.every=1)

# ---- shell syntax in file names is just text ----------------------------------------------------
ft evil-data 0 train mlp.cfg "${base[@]}" --set "data.train=$TMP/data/x; touch PWNED5"
expect_fail evil-data 2 "$TMP/data/x; touch PWNED5"

cp "$TMP/data/d.h5.csv" "$TMP/data/in.csv"
touch "$TMP/marker"
sleep 1
ft evil-run 0 train mlp.cfg "${base[@]}"
expect_ok evil-run
[ -f "$TMP/out/run $evil/model.h5" ] || fail "model.h5 is not in the literally named run.dir"
ft evil-import 0 data import-csv "$TMP/data/in.csv" -o "$TMP/out/a b;\$(touch PWNED6).h5" --no-header
expect_ok evil-import
[ -f "$TMP/out/a b;\$(touch PWNED6).h5" ] || fail "the import output does not have the literal name"
if find "$TMP" -name 'PWNED*' | grep -q .; then
    fail "a command in a path was run: $(find "$TMP" -name 'PWNED*')"
else
    note "ok: shell syntax in data.train, run.dir and -o was never run"
fi

# ---- outputs only under run.dir (and -o) --------------------------------------------------------
# every file created or changed since the marker, except this test's own logs (in $TMP)
new_files() {
    find "$TMP" -newer "$TMP/marker" -type f ! -path "$TMP/*.out" ! -path "$TMP/*.err" | LC_ALL=C sort
}
outside=$(new_files | grep -vF "$TMP/out/" || true)
[ -z "$outside" ] || fail "files written outside run.dir and -o: $outside"
[ -n "$outside" ] || note "ok: the run wrote $(new_files | grep -c "$TMP/out/run") files, all under run.dir"

touch "$TMP/marker"
sleep 1
ft ro-eval 0 eval "$TMP/out/run $evil/model.h5" --data "$TMP/data/d.h5"
expect_ok ro-eval
ft ro-inspect 0 inspect "$TMP/out/run $evil/$(ckpt 2)"
expect_ok ro-inspect
changed=$(new_files)
[ -z "$changed" ] || fail "eval/inspect wrote files: $changed"

# ---- run.dir = ../escape: where the config says, nowhere else -----------------------------------
touch "$TMP/marker"
sleep 1
ft escape 0 train mlp.cfg "${base[@]}" --set run.dir=../escape
expect_ok escape
[ -f "$TMP/escape/model.h5" ] || fail "run.dir = ../escape did not write $TMP/escape/model.h5"
outside=$(new_files | grep -vF "$TMP/escape/" || true)
[ -z "$outside" ] || fail "run.dir = ../escape wrote elsewhere too: $outside"

# ---- layer names are names, not paths -----------------------------------------------------------
sed 's/name = "fc1"/name = "..\/x"/' mlp.cfg >badname.cfg
ft badname 0 train badname.cfg "${base[@]}"
[ "$RC" = 2 ] || fail "[badname] a layer named ../x was accepted (exit $RC)"
note "ok: [badname] exit $RC: $(head -n 1 "$TMP/badname.err")"
ft_done
