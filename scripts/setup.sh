#!/usr/bin/env bash
# Idempotent set-up shared by scripts/start and scripts/test: system packages (apt-get, only
# when missing) and the project's virtual environment in .venv.  Safe to run again and again.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ "${SHOAL_SETUP_ETCD:-1}" = 1 ]; then
  command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
  command -v etcdctl >/dev/null 2>&1 || need_apt+=(etcd-client)
fi
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ "${SHOAL_SETUP_PODMAN:-1}" = 1 ]; then
  # Containers: podman on runc (crun refuses this machine's cgroup v1 hierarchy), the CNI
  # plugins for pod networks, and busybox-static for the offline demo image.
  command -v podman >/dev/null 2>&1 || need_apt+=(podman)
  command -v runc >/dev/null 2>&1 || need_apt+=(runc)
  [ -x /usr/bin/busybox ] || need_apt+=(busybox-static)
  [ -d /usr/lib/cni ] || need_apt+=(containernetworking-plugins)
  command -v iptables >/dev/null 2>&1 || need_apt+=(iptables)
fi
if [ "${SHOAL_SETUP_PROXY:-1}" = 1 ]; then
  # The service proxy's data plane (HAProxy 2.6, master-worker) and nftables; the load tools
  # the Service tests and benchmarks drive traffic with.
  command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
  command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
  command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
  command -v ab >/dev/null 2>&1 || need_apt+=(apache2-utils)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing system packages ${need_apt[*]} and not root to install them" >&2
    exit 1
  fi
  echo "setup: apt-get install ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian starts etcd and HAProxy as services on install; Shoal runs its own processes.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now etcd haproxy >/dev/null 2>&1 || true; fi
fi

stamp=.venv/.shoal-installed
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi
