# shellcheck shell=bash
# Sourced by .ci/run and .ci/main-job: what this host must have before lab
# runs here, each got only when missing (so a warm machine only checks).

# Installs the named Debian packages that are not installed yet.
host_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "host: installing ${missing[*]}" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  fi
}

# A Docker daemon that answers. kind runs its nodes `--privileged`, which asks
# for every capability; a host that withholds some from its own bounding set
# (these CI machines withhold CAP_SYS_RESOURCE) needs Docker's default
# runtime to be a runc that drops them: .ci/kind/runc-host-caps, registered
# when dockerd is started here.
host_docker() {
  local here dockerd_args=()
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  if [ "$(sed -n 's/^CapBnd:\s*//p' /proc/self/status)" != "$(printf '%016x' $(( (1 << ($(cat /proc/sys/kernel/cap_last_cap) + 1)) - 1 )))" ]; then
    dockerd_args=(--add-runtime "lab-runc=$here/kind/runc-host-caps" --default-runtime lab-runc)
    if docker info >/dev/null 2>&1 && [ "$(docker info --format '{{.DefaultRuntime}}')" != lab-runc ]; then
      echo "host: this host withholds capabilities from its bounding set, so kind's --privileged nodes" >&2
      echo "host: cannot start on the Docker daemon already running. Stop it and rerun; this script then starts" >&2
      echo "host: dockerd ${dockerd_args[*]}" >&2
      return 1
    fi
  fi
  if ! docker info >/dev/null 2>&1; then
    echo "host: no Docker daemon answers; starting dockerd ${dockerd_args[*]}" >&2
    (dockerd "${dockerd_args[@]}" >/tmp/lab-dockerd.log 2>&1 &)
    for _ in $(seq 60); do
      docker info >/dev/null 2>&1 && break
      sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
      echo "host: dockerd did not come up:" >&2
      tail -n 50 /tmp/lab-dockerd.log >&2
      return 1
    fi
  fi
}

# Go on PATH: the machine's own (these machines carry it in /usr/local/go)
# builds Kubernetes, kind, helm and Go components from the module proxy.
host_go() {
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH="$PATH:/usr/local/go/bin"
  fi
  command -v go >/dev/null 2>&1 || { echo "host: no Go toolchain on PATH or in /usr/local/go (Debian: apt-get install golang)" >&2; return 1; }
}
