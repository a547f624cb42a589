# Shared helpers for the e2e scripts. Source it; do not run it.
# shellcheck shell=bash

REGIE_E2E_PROG=${REGIE_E2E_PROG:-${0##*/}}

# Progress and errors go to stderr so that stdout stays machine-readable.
log() { printf '[%s] %s\n' "$REGIE_E2E_PROG" "$*" >&2; }
warn() { printf '[%s] warning: %s\n' "$REGIE_E2E_PROG" "$*" >&2; }
die() {
  printf '[%s] error: %s\n' "$REGIE_E2E_PROG" "$*" >&2
  exit 1
}

# Seconds since the epoch with milliseconds, for the per-phase timings.
now_ms() { date +%s%3N; }
# fmt_ms START_MS -> "12.3s" elapsed since START_MS.
elapsed() {
  local ms=$(($(now_ms) - $1))
  printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100))
}

need_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found${2:+ ($2)}"
}
