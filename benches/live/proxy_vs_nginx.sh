#!/usr/bin/env bash
# A proxy hit against nginx, side by side in one sitting: the same bytes served
# by nginx (sendfile, from its page cache) and by a distroweb node that holds
# them, wrk -t2 -c64 on each, rounds interleaved so that a noisy machine
# weighs on both alike. Prints requests/s, p50 and the ratio per round.
#
#   benches/live/proxy_vs_nginx.sh [ROUNDS] [SECONDS]
#
# Installs wrk and nginx from Debian packages when missing (as root);
# listens on 127.0.0.1 only.
set -euo pipefail

rounds=${1:-3}
seconds=${2:-10}
here=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
# nginx's workers run as another user: they must reach the files.
chmod 755 "$work"
nginx_port=18280
proxy_port=18234
node_pid=""

cleanup() {
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "needs wrk and nginx: apt-get install -y wrk nginx-light (as root)" >&2
        exit 1
    fi
    apt-get update -q && apt-get install -y -q wrk nginx-light
fi

cargo build --release --quiet --manifest-path "$here/Cargo.toml"
bin="$here/target/release/distroweb"

mkdir -p "$work/www" "$work/logs" "$work/data"
head -c 4096 /dev/urandom >"$work/www/f4k.bin"
head -c 102400 /dev/urandom >"$work/www/f100k.bin"
cat >"$work/nginx.conf" <<EOF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$nginx_port; root $work/www; }
}
EOF
nginx -c "$work/nginx.conf" -p "$work"

"$bin" node --listen 127.0.0.1:0 --proxy "127.0.0.1:$proxy_port" --data-dir "$work/data" >"$work/logs/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$proxy_port/" && break
    sleep 0.1
done

declare -A host
for f in f4k f100k; do
    # The second line `publish` prints is the site's URL: its host is the origin.
    url=$("$bin" publish "$work/www/$f.bin" --proxy "127.0.0.1:$proxy_port" | sed -n 2p)
    host[$f]=${url#http://}
    host[$f]=${host[$f]%/}
done

measure() { # URL [wrk header args...] -> "requests/s p50 p99"
    local url=$1
    shift
    wrk -t2 -c64 -d"${seconds}s" --latency "$@" "$url" |
        awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {print rps, p50, p99}'
}

printf '%-6s %-6s %12s %9s %9s %14s %9s %9s %7s\n' round size nginx_rps p50 p99 distroweb_rps p50 p99 ratio
for round in $(seq "$rounds"); do
    for f in f4k f100k; do
        read -r n_rps n_p50 n_p99 < <(measure "http://127.0.0.1:$nginx_port/$f.bin")
        read -r d_rps d_p50 d_p99 < <(measure "http://127.0.0.1:$proxy_port/" \
            -H "Host: ${host[$f]}" -H "Sec-Fetch-Site: none" -H "Sec-Fetch-Mode: navigate")
        ratio=$(awk -v d="$d_rps" -v n="$n_rps" 'BEGIN {printf "%.2f", d / n}')
        printf '%-6s %-6s %12s %9s %9s %14s %9s %9s %7s\n' "$round" "${f#f}" "$n_rps" "$n_p50" "$n_p99" "$d_rps" "$d_p50" "$d_p99" "$ratio"
    done
done
