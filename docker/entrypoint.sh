#!/bin/sh
# Run one engine under /usr/bin/time -v, then record the container's cgroup peak memory, which
# disappears with the container on cgroup v1. Arguments go to `python -m engines`; results to
# $RESULTS_DIR (default /results): time.txt, cgroup_memory.json and the engine's own files.
OUT="${RESULTS_DIR:-/results}"
if ! touch "$OUT/.writable" 2>/dev/null; then
    echo "error: results folder $OUT is not writable by uid $(id -u): create it on the host and give it to that user (chown $(id -u) DIR)" >&2
    exit 2
fi
rm -f "$OUT/.writable"
/usr/bin/time -v -o "$OUT/time.txt" python -m engines "$@"
status=$?

# Anonymous memory (the engine's own) and page cache at the end, from memory.stat; the peak includes
# page cache, which the harness makes comparable by evicting the inputs before each run.
peak="" limit="" source="" anon="" cache="" stat=""
if [ -r /sys/fs/cgroup/memory.peak ]; then                       # cgroup v2
    peak=$(cat /sys/fs/cgroup/memory.peak); limit=$(cat /sys/fs/cgroup/memory.max); source="v2 memory.peak"
    stat=/sys/fs/cgroup/memory.stat anon_key=anon cache_key=file
elif [ -r /sys/fs/cgroup/memory/memory.max_usage_in_bytes ]; then  # cgroup v1
    peak=$(cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes)
    limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes); source="v1 memory.max_usage_in_bytes"
    stat=/sys/fs/cgroup/memory/memory.stat anon_key=total_rss cache_key=total_cache
fi
if [ -n "$stat" ] && [ -r "$stat" ]; then
    while read -r key value; do
        [ "$key" = "$anon_key" ] && anon=$value
        [ "$key" = "$cache_key" ] && cache=$value
    done < "$stat"
fi
printf '{"peak_bytes": %s, "limit": "%s", "source": "%s", "anon_bytes": %s, "cache_bytes": %s, "exit_code": %s}\n' \
    "${peak:-null}" "$limit" "$source" "${anon:-null}" "${cache:-null}" "$status" > "$OUT/cgroup_memory.json"
exit $status
