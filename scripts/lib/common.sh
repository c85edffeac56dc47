# Shared by scripts/run and scripts/test. Source it; do not run it.

FERRY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Everything Ferry needs from Debian 12 to build, run and test.
FERRY_PACKAGES=(
  g++ cmake make ninja-build pkg-config git curl ca-certificates openssl
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librdkafka-dev libpqxx-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libssl-dev
  postgresql-15 postgresql-client-15 prometheus kcat procps
  clang libclang-rt-14-dev clang-format clang-tidy
)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs the packages that are missing (needs root, or sudo).
ensure_packages() {
  local missing=() p
  for p in "${FERRY_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing ${#missing[@]} missing packages: ${missing[*]}"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build DIR CMAKE_ARGS... [-- TARGETS...]
build() {
  local dir=$1; shift
  local args=() targets=()
  while [[ $# -gt 0 && $1 != "--" ]]; do args+=("$1"); shift; done
  [[ ${1:-} == "--" ]] && shift
  targets=("$@")
  mkdir -p "$dir"
  # Ninja when the build folder is new (a folder keeps the generator it
  # was configured with).
  local generator=()
  [[ -f "$dir/CMakeCache.txt" ]] || generator=(-G Ninja)
  cmake -S "$FERRY_ROOT" -B "$dir" "${generator[@]}" "${args[@]}" >"$dir/configure.log" 2>&1 \
    || { cat "$dir/configure.log" >&2; return 1; }
  local target_args=()
  for t in "${targets[@]}"; do target_args+=(--target "$t"); done
  cmake --build "$dir" -j "${FERRY_JOBS:-$(nproc)}" "${target_args[@]}"
}

# stage NAME COMMAND...: runs COMMAND, prints its wall time, records it.
FERRY_STAGES=()
stage() {
  local name=$1; shift
  local start=$SECONDS rc=0
  log "$name"
  "$@" || rc=$?
  local took=$((SECONDS - start))
  FERRY_STAGES+=("$(printf '%-28s %4ds  %s' "$name" "$took" "$([[ $rc -eq 0 ]] && echo ok || echo "FAILED ($rc)")")")
  log "$name: ${took}s$([[ $rc -eq 0 ]] || echo ", FAILED ($rc)")"
  return $rc
}

print_stages() {
  log "stage times"
  printf '  %s\n' "${FERRY_STAGES[@]}" >&2
}
