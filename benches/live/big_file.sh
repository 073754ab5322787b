#!/usr/bin/env bash
# A big file against nginx, side by side in one sitting: the same bytes
# downloaded with curl from nginx (sendfile, from its page cache) and through
# the proxy of a distroweb node that holds them, rounds interleaved; then the
# file fetched cold by a fresh node from two holders (the publisher and a node
# that fetched it first), checked byte for byte, once a round by a new node
# each time, with nginx measured just before it. Prints MB/s and ratios.
#
#   benches/live/big_file.sh [MIB] [ROUNDS]     (default 1024 MiB, 3 rounds)
#
# Installs nginx from Debian packages when missing (as root); listens on
# 127.0.0.1 only; needs about 5 × MIB of free disk.
set -euo pipefail

mib=${1:-1024}
rounds=${2:-3}
here=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
# nginx's workers run as another user: they must reach the files.
chmod 755 "$work"
nginx_port=18380
pids=()
cleanup() {
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

if ! command -v nginx >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "needs nginx: apt-get install -y nginx-light (as root)" >&2
        exit 1
    fi
    apt-get update -q && apt-get install -y -q nginx-light
fi
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
bin="$here/target/release/distroweb"

mkdir -p "$work/www" "$work/logs"
head -c "$((mib << 20))" /dev/urandom >"$work/www/big.bin"
want=$(sha256sum "$work/www/big.bin" | cut -d' ' -f1)
cat >"$work/nginx.conf" <<EOF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  server { listen 127.0.0.1:$nginx_port; root $work/www; }
}
EOF
nginx -c "$work/nginx.conf" -p "$work"

store_gib=$(((mib >> 10) * 2 + 2))
start_node() { # NAME PROXY_PORT PEER_PORT [BOOTSTRAP]
    local args=(node --listen "127.0.0.1:$3" --proxy "127.0.0.1:$2" --data-dir "$work/$1"
        --upload-mbit 100000 --store-gib "$store_gib")
    [ -n "${4:-}" ] && args+=(--bootstrap "$4")
    "$bin" "${args[@]}" >"$work/logs/$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$2/" && return
        sleep 0.1
    done
    echo "node $1 did not start" >&2
    exit 1
}
start_node a 18381 18391
start_node b 18382 18392 127.0.0.1:18391

t0=$(date +%s.%N)
url=$("$bin" publish "$work/www/big.bin" --proxy 127.0.0.1:18381 | sed -n 2p)
t1=$(date +%s.%N)
host=${url#http://}
host=${host%/}
echo "published $mib MiB through node a in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s"

mbps() { # URL [curl args...] -> MB/s
    local url=$1
    shift
    curl -s -o /dev/null -w '%{speed_download}' "$@" "$url" |
        awk '{printf "%.0f", $1 / 1e6}'
}
get() { # PROXY_PORT -> "MB/s sha256": the cold fetch timed into /dev/null (a
    # checksum in the pipe would be what is measured), then the bytes checked
    # by reading them again from the node, which now holds them.
    local speed
    speed=$(mbps "http://127.0.0.1:$1/" -H "Host: $host")
    echo "$speed $(curl -s -H "Host: $host" "http://127.0.0.1:$1/" | sha256sum | cut -d' ' -f1)"
}

printf '%-6s %12s %16s %7s\n' round nginx_MB/s held_MB/s ratio
for round in $(seq "$rounds"); do
    n=$(mbps "http://127.0.0.1:$nginx_port/big.bin")
    d=$(mbps "http://127.0.0.1:18381/" -H "Host: $host")
    printf '%-6s %12s %16s %7s\n' "$round" "$n" "$d" "$(awk -v d="$d" -v n="$n" 'BEGIN {printf "%.2f", d / n}')"
done

read -r b_mbps b_sum < <(get 18382)
echo "node b, cold from one holder: $b_mbps MB/s, $([ "$b_sum" = "$want" ] && echo byte-identical || echo DIFFERENT)"
# Each round a new node c fetches cold from the two holders (a and b), just
# after nginx serves the same bytes; it is stopped and its store removed.
for round in $(seq "$rounds"); do
    start_node "c$round" 18383 18393 127.0.0.1:18391
    n=$(mbps "http://127.0.0.1:$nginx_port/big.bin")
    read -r c_mbps c_sum < <(get 18383)
    echo "round $round: node c$round, cold from two holders: $c_mbps MB/s, $([ "$c_sum" = "$want" ] && echo byte-identical || echo DIFFERENT); nginx $n MB/s; ratio $(awk -v d="$c_mbps" -v n="$n" 'BEGIN {printf "%.2f", d / n}')"
    kill "${pids[-1]}"
    wait "${pids[-1]}" 2>/dev/null || true
    unset 'pids[-1]'
    rm -rf "${work:?}/c$round"
done
