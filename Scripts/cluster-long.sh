#!/usr/bin/env bash
# The long mode of issue 9 on one machine, loopback only, bounded in time: three etcd members, three PostgreSQL 15
# servers under Patroni (a primary and two synchronous standbys), HAProxy routing to whichever is
# primary (Patroni's REST check), then `psm bench cluster` against it, which kills the primary under
# a write load and reports failover seconds, lost and duplicated acknowledgements, racing writers and
# node takeover. Everything it starts is stopped on exit.
#
#   Scripts/cluster-long.sh [--keep] [-- extra psm bench cluster options]
#   Scripts/cluster-long.sh --up     # only start the cluster, print its URL and kill command, and keep
#                                    # it until standard input closes (Enter, Ctrl-D or Ctrl-C; psm bench
#                                    # cluster --long closes the pipe: a child of a Swift process inherits
#                                    # a blocked SIGTERM, so a signal would not reach this script)
#
# Needs root (it installs patroni, etcd-server, haproxy and postgresql with apt-get when missing and
# runs the servers as the postgres user). Prints the benchmark's JSON last. The topology is the one
# ARCHITECTURE.md documents for three machines, with every address on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
up=0
extra=()
while (($#)); do
  case "$1" in
    --keep) keep=1 ;;
    --up) up=1 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "usage: $0 [--keep] [-- psm bench cluster options]" >&2; exit 64 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "cluster-long: run as root (apt-get, runuser)" >&2; exit 64; }
need=()
for p in patroni etcd-server haproxy postgresql curl; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if ((${#need[@]})); then
  echo "cluster-long: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d /tmp/psm-cluster.XXXXXX)
chown postgres "$dir"
base=$((20000 + RANDOM % 20000))
proxy=$((base + 2))
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f "$dir/" 2>/dev/null || true
  sleep 1
  pkill -9 -f "$dir/" 2>/dev/null || true
  if [ "$keep" = 1 ]; then echo "cluster-long: kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT   # a signal runs cleanup too

# Three etcd members (Patroni's DCS): a quorum that survives the loss of one.
members="" hosts=""
for e in 1 2 3; do
  members+="${members:+,}e$e=http://127.0.0.1:$((base + 40 + e))"
  hosts+="${hosts:+,}127.0.0.1:$((base + 30 + e))"
done
echo "cluster-long: etcd members on $hosts"
for e in 1 2 3; do
  runuser -u postgres -- etcd --name "e$e" --data-dir "$dir/etcd$e" \
    --listen-client-urls "http://127.0.0.1:$((base + 30 + e))" --advertise-client-urls "http://127.0.0.1:$((base + 30 + e))" \
    --listen-peer-urls "http://127.0.0.1:$((base + 40 + e))" --initial-advertise-peer-urls "http://127.0.0.1:$((base + 40 + e))" \
    --initial-cluster "$members" --initial-cluster-state new --initial-cluster-token psm-long --enable-v2=true >"$dir/etcd$e.log" 2>&1 &
  pids+=($!)
done
ok=0
for _ in $(seq 150); do curl -sf "http://127.0.0.1:$((base + 31))/health" | grep -q '"health":"true"' && { ok=1; break; }; sleep 0.2; done
[ "$ok" = 1 ] || { tail -5 "$dir"/etcd*.log >&2; echo "cluster-long: etcd did not form a quorum" >&2; exit 1; }

for n in 1 2 3; do
  pg=$((base + 10 + n)) rest=$((base + 20 + n))
  mkdir -p "$dir/pg$n"; chown postgres "$dir/pg$n"; chmod 700 "$dir/pg$n"
  cat >"$dir/pg$n.yml" <<EOF
scope: psm-long
name: pg$n
restapi:
  listen: 127.0.0.1:$rest
  connect_address: 127.0.0.1:$rest
etcd:
  hosts: $hosts
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 5
    maximum_lag_on_failover: 0
    synchronous_mode: true
    synchronous_node_count: 2
    postgresql:
      use_pg_rewind: true
      parameters:
        synchronous_commit: "on"
        max_connections: 200
        wal_level: replica
        hot_standby: "on"
  initdb:
    - encoding: UTF8
    - auth: trust
  pg_hba:
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:$pg
  connect_address: 127.0.0.1:$pg
  data_dir: $dir/pg$n/data
  bin_dir: $bin
  pgpass: $dir/pg$n/pgpass
  authentication:
    replication: {username: replicator, password: rep}
    superuser: {username: postgres, password: pg}
  parameters:
    unix_socket_directories: $dir/pg$n
tags: {nofailover: false, noloadbalance: false, clonefrom: false, nosync: false}
EOF
  chown postgres "$dir/pg$n.yml"
  runuser -u postgres -- patroni "$dir/pg$n.yml" >"$dir/patroni$n.log" 2>&1 &
  pids+=($!)
  [ "$n" = 1 ] && sleep 4   # let pg1 bootstrap the cluster first
done

cat >"$dir/haproxy.cfg" <<EOF
global
  maxconn 1000
defaults
  mode tcp
  timeout connect 2s
  timeout client 60s
  timeout server 60s
listen primary
  bind 127.0.0.1:$proxy
  option httpchk GET /primary
  http-check expect status 200
  default-server inter 300ms fall 2 rise 1 on-marked-down shutdown-sessions
  server pg1 127.0.0.1:$((base + 11)) check port $((base + 21))
  server pg2 127.0.0.1:$((base + 12)) check port $((base + 22))
  server pg3 127.0.0.1:$((base + 13)) check port $((base + 23))
EOF
haproxy -f "$dir/haproxy.cfg" -db >"$dir/haproxy.log" 2>&1 &
pids+=($!)

echo "cluster-long: waiting for a primary and two synchronous standbys"
ok=0
for _ in $(seq 240); do
  sync=$(curl -sf "http://127.0.0.1:$((base + 21))/cluster" 2>/dev/null | python3 -c 'import json,sys; c=json.load(sys.stdin); print(sum(1 for m in c["members"] if m["role"] in ("sync_standby",)), sum(1 for m in c["members"] if m["role"]=="leader"))' 2>/dev/null || echo "0 0")
  if [ "$sync" = "2 1" ]; then ok=1; break; fi
  sleep 0.5
done
[ "$ok" = 1 ] || { tail -20 "$dir"/patroni*.log >&2; echo "cluster-long: the cluster did not come up" >&2; exit 1; }
curl -sf "http://127.0.0.1:$((base + 21))/cluster" | python3 -c 'import json,sys; [print("  ", m["name"], m["role"], m["state"]) for m in json.load(sys.stdin)["members"]]'

# The command the benchmark runs to kill the primary: SIGKILL its Patroni and its postmaster.
cat >"$dir/kill-primary.sh" <<EOF
#!/usr/bin/env bash
for n in 1 2 3; do
  if curl -sf -o /dev/null "http://127.0.0.1:\$(( $base + 20 + n ))/primary"; then
    pkill -9 -f "patroni $dir/pg\$n.yml" || true
    pid=\$(head -1 "$dir/pg\$n/data/postmaster.pid" 2>/dev/null || true)
    [ -n "\$pid" ] && kill -9 "\$pid" || true
    echo "killed pg\$n"
    exit 0
  fi
done
echo "no primary found" >&2
exit 1
EOF
chmod +x "$dir/kill-primary.sh"

url="postgres://postgres:pg@127.0.0.1:$proxy/postgres"
if [ "$up" = 1 ]; then
  echo "cluster-long: up: PSM_JOURNAL=$url  kill the primary: $dir/kill-primary.sh  (Enter, Ctrl-D or Ctrl-C stops everything)"
  read -r _ || true
  exit 0
fi
swift build -c release --product psm >/dev/null
echo "cluster-long: psm bench cluster through HAProxy (127.0.0.1:$proxy)"
.build/release/psm bench cluster --journal "$url" --kill-primary "$dir/kill-primary.sh" --json "${extra[@]}"
