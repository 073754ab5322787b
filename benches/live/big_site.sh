#!/usr/bin/env bash
# Content past one manifest (issue 16, item 3): a big file and a site of many
# files published through one node and read back through another, byte for
# byte, with the publishing node's peak memory above idle.
#
#   benches/live/big_site.sh [FILE_GIB] [FILES]     (default 5 GiB, 200,000 files)
#
# A file of more than 32,000 chunks (7.8 GiB at 256 KiB) is a tree of
# manifests, and a site of more than 16,384 files (fewer when paths are long)
# an index of shards; below that the content keeps its one-level manifest.
# Memory: the node's VmHWM (peak resident set) after the publish, less its
# VmRSS before it; the CLI's peak from /usr/bin/time. The bound is 64 MiB above
# idle for the file. Listens on 127.0.0.1 only; needs about 3 × FILE_GIB of
# free disk.
set -euo pipefail

gib=${1:-5}
files=${2:-200000}
here=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet --manifest-path "$here/Cargo.toml"
bin="$here/target/release/distroweb"
mkdir -p "$work/logs"

# Two copies of the file and the site's blocks (64 Ki blocks per GiB of store).
store_gib=$((gib * 2 + files / 30000 + 2))
start_node() { # NAME PROXY_PORT PEER_PORT [BOOTSTRAP]; prints the pid
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
kib() { # PID FIELD -> KiB
    awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b - a}'; }

start_node a 18481 18491
a_pid=${pids[0]}
start_node b 18482 18492 127.0.0.1:18491

# The file, from a stream of pseudo-random bytes (no two chunks alike).
head -c "$((gib << 30))" /dev/urandom >"$work/big.bin"
want=$(sha256sum "$work/big.bin" | cut -d' ' -f1)
idle=$(kib "$a_pid" VmRSS)
t0=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$work/cli.kib" "$bin" publish "$work/big.bin" --proxy 127.0.0.1:18481 >"$work/file.out"
t1=$(date +%s.%N)
peak=$(kib "$a_pid" VmHWM)
host=$(sed -n 2p "$work/file.out")
host=${host#http://}
host=${host%/}
echo "file: $gib GiB published in $(secs "$t0" "$t1") s; node a idle $((idle >> 10)) MiB," \
    "peak $((peak >> 10)) MiB, above idle $(((peak - idle) >> 10)) MiB (bound 64); CLI peak $(($(cat "$work/cli.kib") >> 10)) MiB"
rm "$work/big.bin"
t0=$(date +%s.%N)
got=$(curl -s -H "Host: $host" "http://127.0.0.1:18482/" | sha256sum | cut -d' ' -f1)
t1=$(date +%s.%N)
echo "file: read through node b in $(secs "$t0" "$t1") s, $([ "$got" = "$want" ] && echo byte-identical || echo DIFFERENT)"

# The site: FILES small files, 1,000 a directory, each naming itself.
python3 - "$work/site" "$files" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "p", "%04d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "%07d.txt" % i), "w") as f:
        f.write("file %d\n" % i)
with open(os.path.join(root, "index.html"), "w") as f:
    f.write("<h1>%d files</h1>\n" % n)
EOF
before=$(kib "$a_pid" VmRSS)
t0=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$work/cli.kib" "$bin" publish "$work/site" --proxy 127.0.0.1:18481 >"$work/site.out" 2>/dev/null
t1=$(date +%s.%N)
peak=$(kib "$a_pid" VmHWM)
host=$(sed -n 2p "$work/site.out")
host=${host#http://}
host=${host%/}
echo "site: $files files published in $(secs "$t0" "$t1") s; node a peak $((peak >> 10)) MiB" \
    "($(((peak - before) >> 10)) MiB above its RSS before); CLI peak $(($(cat "$work/cli.kib") >> 10)) MiB"
t0=$(date +%s.%N)
first=$(curl -s -H "Host: $host" "http://127.0.0.1:18482/")
t1=$(date +%s.%N)
echo "site: front page through node b in $(secs "$t0" "$t1") s: $first"
bad=0
for i in 0 1 999 1000 $((files / 2)) $((files - 2)) $((files - 1)) $(shuf -i 0-$((files - 1)) -n 20); do
    path=$(printf 'p/%04d/%07d.txt' $((i / 1000)) "$i")
    body=$(curl -s -H "Host: $host" "http://127.0.0.1:18482/$path")
    [ "$body" = "file $i" ] || { echo "site: $path reads '$body'"; bad=$((bad + 1)); }
done
t2=$(date +%s.%N)
echo "site: 27 paths read through node b in $(secs "$t1" "$t2") s, $([ "$bad" = 0 ] && echo all byte-identical || echo "$bad DIFFERENT")"
