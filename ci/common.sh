# shellcheck shell=bash
# Shared by ci/setup.sh and ci/build_llama_tools.sh (sourced): logging and an idempotent apt-get install.
# The caller sets LOG_TAG first.

log() { printf '[%s] %s\n' "${LOG_TAG:-ci}" "$*" >&2; }

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  log "apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
