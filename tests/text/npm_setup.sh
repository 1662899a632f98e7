# shellcheck shell=bash
# Sourced by the text tests: installs the npm reference packages of tests/text/package.json
# into <build dir>/npm-cache (once; never into the source tree) and exports NODE_PATH.
# Exits 77 (skipped) with a message when node or npm is missing or the install fails (no
# network). Needs SRC (source dir) and BUILD (ctest build dir, $3) set by the caller.
npm_setup() {
    command -v node >/dev/null 2>&1 || { echo "SKIP: node not found (Debian: nodejs)"; exit 77; }
    command -v npm >/dev/null 2>&1 || { echo "SKIP: npm not found (Debian: npm)"; exit 77; }
    local dir=${FTUNE_NPM_CACHE:-${BUILD:-${TMPDIR:-/tmp}}/npm-cache}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    (
        # ctest -j runs several text tests at once: one installs, the others wait.
        if command -v flock >/dev/null 2>&1; then flock -w 600 9 || true; fi
        if cmp -s "$SRC/tests/text/package.json" "$dir/.installed" &&
            [ -d "$dir/node_modules" ]; then
            exit 0
        fi
        cp "$SRC/tests/text/package.json" "$dir/package.json"
        if ! timeout 300 npm install --prefix "$dir" --no-audit --no-fund --no-package-lock \
            --loglevel=error >"$dir/install.log" 2>&1; then
            echo "npm install failed (see $dir/install.log):"
            tail -n 5 "$dir/install.log"
            exit 1
        fi
        cp "$SRC/tests/text/package.json" "$dir/.installed"
    ) 9>"$dir/.lock" || {
        echo "SKIP: could not install the npm reference packages (no network?)"
        exit 77
    }
    export NODE_PATH="$dir/node_modules"
}
