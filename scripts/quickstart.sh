#!/usr/bin/env bash
# Quickstart: install what is missing, bring Pith up (control plane, node agent and proxy, in
# the background), and run examples/hello-ts as a service of two machines behind the proxy. The first run compiles
# the app's kernel (~5 minutes on 2 cores, with progress); later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

home="${PITH_HOME:-$HOME/.pith}"
mkdir -p "$home"
pith() { node bin/pith.js "$@"; }

if ! curl -fsS http://127.0.0.1:7070/healthz >/dev/null 2>&1; then
  echo "quickstart: starting pith up (log: $home/up.log)"
  nohup node bin/pith.js up >"$home/up.log" 2>&1 &
  echo $! >"$home/up.pid"
  for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:7070/healthz >/dev/null 2>&1 && break; sleep 0.2; done
fi

pith apply -f examples/hello-ts/service.yaml
echo "quickstart: waiting for the machines to be ready"
for _ in $(seq 1 180); do
  ready=$(pith get service hello -o json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s);console.log(`${o.status.ready??0}/${o.status.desired??"?"}`)})')
  [ "${ready%/*}" = "${ready#*/}" ] && break
  sleep 1
done
pith get services
pith get machines -o wide
echo "quickstart: curl -H 'Host: hello.localhost' http://127.0.0.1:8080/   (through Pith's proxy)"
curl -fsS -H "Host: hello.localhost" http://127.0.0.1:8080/
cat <<EOT

Pith is up: GUI and API at http://127.0.0.1:7070/ (token: $home/token), proxy at 127.0.0.1:8080,
log $home/up.log. Try:
  node bin/pith.js get machines -w            # watch machines change
  curl -H 'Host: hello.localhost' http://127.0.0.1:8080/
  node bin/pith.js scale hello 3
  node bin/pith.js logs <machine> -f
  node bin/pith.js describe machine <machine>  # its jail: uid, cgroup and limits, seccomp, namespaces
  node bin/pith.js delete service hello --wait  # stops its machines, and waits until they have
  kill \$(cat $home/up.pid)                    # stop Pith (running machines keep running until deleted)
EOT
