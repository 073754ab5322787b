#!/usr/bin/env bash
# A site read through nodes that have never seen it: a testnet on loopback, a
# real site of several hundred files published through node 0, then the front
# page's first byte through five fresh nodes in turn (each a node that has
# neither the site nor a connection made for it) and `wget -r` of the pages
# reachable from the front page through a sixth.
#
#   benches/live/fresh_node.sh [SITE_DIR]
#
# SITE_DIR defaults to the Rust book that rustup installs with the toolchain
# (`rustup component add rust-docs`; 659 files, 24 MB): a real documentation
# site. Needs curl and wget; listens on 127.0.0.1 only.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
site=${1:-$(rustc --print sysroot)/share/doc/rust/html/book}
if [ ! -f "$site/index.html" ]; then
    echo "no site at $site (give a directory with an index.html, or: rustup component add rust-docs)" >&2
    exit 1
fi
port=18300
nodes=8
work=$(mktemp -d)
testnet_pid=""
cleanup() {
    [ -n "$testnet_pid" ] && kill "$testnet_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet --manifest-path "$here/Cargo.toml"
bin="$here/target/release/distroweb"
"$bin" testnet --nodes "$nodes" --proxy-port "$port" >"$work/testnet.log" 2>&1 &
testnet_pid=$!
for _ in $(seq 100); do
    grep -q "Press Ctrl-C" "$work/testnet.log" && break
    sleep 0.1
done
files=$(find "$site" -type f | wc -l)
bytes=$(du -sb "$site" | cut -f1)
url=$("$bin" publish "$site" --proxy "127.0.0.1:$port" | tail -1)
host=${url#http://}
host=${host%%/*}
host=${host%:*}
echo "site: $site ($files files, $bytes bytes), published through node 0"

firsts=()
for i in 1 2 3 4 5; do
    p=$((port + i))
    t=$(curl -s -o /dev/null -w '%{time_starttransfer}' \
        --resolve "$host:$p:127.0.0.1" "http://$host:$p/")
    ms=$(awk -v t="$t" 'BEGIN { printf "%.1f", t * 1000 }')
    firsts+=("$ms")
    echo "front page through fresh node $i: first byte $ms ms"
done
median=$(printf '%s\n' "${firsts[@]}" | sort -n | sed -n 3p)
echo "first byte, median of 5 fresh nodes: $median ms"

p=$((port + 6))
mkdir -p "$work/wget"
start=$(date +%s.%N)
# The Host header names the site; links in it are relative, so every page
# reachable from the front page goes through the same fresh node.
(cd "$work/wget" && wget -q -r -l inf --no-parent -nH \
    --header "Host: $host:$p" "http://127.0.0.1:$p/") || true
end=$(date +%s.%N)
got=$(find "$work/wget" -type f | wc -l)
got_bytes=$(du -sb "$work/wget" | cut -f1)
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
echo "wget -r through fresh node 6: $got files, $got_bytes bytes in $wall s"
