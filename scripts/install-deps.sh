#!/usr/bin/env bash
# Installs the Debian 12 packages srlm needs. Idempotent: packages already present are
# skipped by apt. Run as root (or with sudo available).
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --bench  also the peers the benchmarks compare against
#                                    (PyTorch, NumPy, SymPy, bubblewrap, firejail, Node.js)
#   scripts/install-deps.sh --dev    also fixture generation + fuzzing tools (PyTorch, clang)
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake pkg-config git
  libzmq3-dev                      # ZeroMQ: every socket between services
  libprotobuf-c-dev protobuf-c-compiler  # wire messages (proto/)
  libseccomp-dev                   # sandbox syscall filter
  libopenblas-dev                  # cblas_sgemm for every matrix product
  liblmdb-dev                      # dataset store, consumer cursors
  libpcre2-dev                     # tokenizer pre-tokenizer regex, answer extraction
  libutf8proc-dev                  # NFC normalisation, Unicode classes
  zlib1g-dev                       # bundled compressed data sets and tokenizer
  libjansson-dev                   # JSON: tokenizer.json, config.json, JSONL, run configs
  libgmp-dev                       # exact rationals in the math checker
  libssl-dev                       # SHA-256 (libcrypto) for checkpoints and imports
  libcmocka-dev                    # unit-test framework
  python3-minimal python3          # the interpreter that runs sandboxed code
  docker-compose                   # validates deploy/docker-compose.yml in tests
  jq                               # edits model configs in tests/it_harden_model.sh
)
BENCH_PKGS=( python3-torch python3-numpy python3-sympy bubblewrap firejail hyperfine )  # Node.js + npm: from the machine image, if present
DEV_PKGS=( python3-torch python3-numpy clang libclang-rt-14-dev )

want=("${BUILD_PKGS[@]}")
for a in "$@"; do
  case "$a" in
    --bench) want+=("${BENCH_PKGS[@]}") ;;
    --dev) want+=("${DEV_PKGS[@]}") ;;
    *) echo "install-deps: unknown option '$a' (use --bench or --dev)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#want[@]} packages present"; exit 0
fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
