#!/usr/bin/env bash
# Installs what Pith needs on Debian 12, and only what is missing: QEMU and its firmware,
# Debian's kernel source and the tools to build it, musl for Pith's small C programs, and the
# npm dependencies. Safe to run again: it does nothing when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  qemu-system-x86      # the hypervisor (microvm machine, TCG and KVM) and qboot firmware
  linux-source-6.1     # the only source Pith's kernels are built from
  git                  # git apply: Pith's patches to it (src/kernel/patches)
  flex bison bc libelf-dev libssl-dev make gcc  # what `make tinyconfig && make vmlinux` needs
  cpio                 # to list image contents in tests
  musl-tools           # tiny static init and example server
  libslirp-dev pkg-config  # pith-net, each machine's user network (QEMU's own user-network library)
  xz-utils binutils    # strip (runtime and kernels), xz (Debian's kernel configs)
  e2fsprogs            # mke2fs and debugfs: the read-only runtime disk of Node images
  procps curl          # pgrep/pkill in the tests; curl in the quickstart
  haproxy              # the proxy's optional HAProxy data path (pith proxy --engine haproxy) and its tests
  chromium             # the GUI's browser tests (driven by playwright-core, never a downloaded browser)
  etcd-server etcd-client  # the etcd store: tests start their own clusters on loopback ports
  docker-registry      # an OCI distribution registry for pith push/pull (tests start their own)
  ccache               # kernel builds: a new capability set reuses the objects of earlier builds
  iproute2             # ip netns and veth pairs: the multi-host tests' simulated hosts
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies"
  # Native addons (better-sqlite3) compile from source: no prebuilt binary is downloaded.
  npm_config_build_from_source=true npm ci --no-audit --no-fund --loglevel=error
fi
