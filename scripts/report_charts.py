#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
#
# report_charts.py: the charts and the text of docs/benchmarks.md from the raw
# results scripts/report.sh collected. Needs python3-matplotlib.
#
# Usage: scripts/report_charts.py WORK_DIR DOCS_DIR
#   WORK_DIR holds: meta.env (commit, date, machine, command), traces_readme.md,
#   sim.txt, local_store.json, cache_bench.json, stampede_{0,1,2}.csv,
#   write.json, metrics.json and, when Redis ran, redis.json.
#   DOCS_DIR gets benchmarks.md and img/*.png (every PNG there is rewritten;
#   stale ones are removed, so the report and its images stay in sync).
import json
import math
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

WORK, DOCS = sys.argv[1], sys.argv[2]
IMG = os.path.join(DOCS, "img")


def read_meta():
    meta = {}
    with open(os.path.join(WORK, "meta.env")) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    return meta


META = read_meta()
STAMP = f"commit {META['commit']}, {META['date']}"


def bench_json(name):
    p = os.path.join(WORK, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def runs(doc):
    # Plain iterations, or the medians when repetitions were asked for.
    out = {}
    for b in doc["benchmarks"]:
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                out[b["run_name"]] = b
        elif b["name"] not in out:
            out[b["name"]] = b
    return out


charts = []  # (file, title, caption, what it shows)


def save(fig, name, title, caption):
    fig.text(0.995, 0.005, f"larder {STAMP}", ha="right", va="bottom", fontsize=7, color="gray")
    fig.savefig(os.path.join(IMG, name), dpi=90)
    plt.close(fig)
    charts.append((name, title, caption))


# ---- 1. hit ratio against capacity, per trace ----
def hit_ratio():
    ref = {}
    with open(os.path.join(WORK, "traces_readme.md")) as f:
        for line in f:
            m = re.match(r"^\| ([a-z0-9_-]+) \| +(\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", line)
            if m:
                ref.setdefault(m.group(1), []).append(
                    (int(m.group(2)), float(m.group(3)), float(m.group(4)), float(m.group(5))))
    ours = {}
    with open(os.path.join(WORK, "sim.txt")) as f:
        for line in f:
            kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
            if kv.get("policy") == "adaptive":
                ours[(kv["trace"], int(kv["capacity"]))] = float(kv["hit_ratio"])
    traces = sorted(ref)
    cols = 4
    rows = math.ceil(len(traces) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(13, 2.6 * rows))
    rows_table = []
    for ax, t in zip(axes.flat, traces):
        pts = sorted(ref[t])
        caps = [p[0] for p in pts]
        larder = [ours.get((t, c), float("nan")) for c in caps]
        ax.plot(caps, [p[3] for p in pts], "k--", lw=1, label="OPT")
        ax.plot(caps, [p[2] for p in pts], "o-", color="tab:orange", label="Caffeine 2.6.2")
        ax.plot(caps, [p[1] for p in pts], "s-", color="tab:gray", label="LRU")
        ax.plot(caps, larder, "D-", color="tab:blue", label="larder")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(t, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_ylim(0, 100)
        for p, l in zip(pts, larder):
            rows_table.append((t, p[0], l, p[1], p[2], p[3]))
    for ax in list(axes.flat)[len(traces):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower right", fontsize=9, ncol=2,
               bbox_to_anchor=(0.98, 0.02))
    fig.supxlabel("capacity (entries, log scale)")
    fig.supylabel("hit ratio (%)")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    avg = lambda i: sum(r[i] for r in rows_table) / len(rows_table)  # noqa: E731
    below = sum(1 for r in rows_table if r[2] < max(r[3], r[4]) - 1.0)
    save(fig, "hit_ratio.png", "Hit ratio against capacity",
         f"Hit ratio (%) of LocalStore's adaptive W-TinyLFU (larder, larder-sim) against exact LRU, "
         f"Caffeine 2.6.2 and Belady's OPT (the traces README's columns), for each of the "
         f"{len(traces)} reference traces. Averages over the {len(rows_table)} points: larder "
         f"{avg(2):.2f}, LRU {avg(3):.2f}, Caffeine 2.6.2 {avg(4):.2f}, OPT {avg(5):.2f}; larder is "
         f"more than 1 point below the better of LRU and Caffeine at {below} points.")


# ---- 2. LocalStore throughput against threads ----
def local_store():
    doc = bench_json("local_store.json")
    r = runs(doc)
    impls = [("LocalStore", "tab:blue", "D-"), ("RawFind", "k", "--"),
             ("ShardedLru16", "tab:gray", "s-"), ("TbbLru", "tab:green", "o-")]
    modes = ["Read", "Mixed90_10", "Write"]
    caps = sorted({int(re.search(r"cap:(\d+)", n).group(1)) for n in r})
    fig, axes = plt.subplots(len(caps), 3, figsize=(12, 3.3 * len(caps)), squeeze=False)
    threads_seen = set()
    for ci, cap in enumerate(caps):
        for mi, mode in enumerate(modes):
            ax = axes[ci][mi]
            for impl, color, style in impls:
                xs, ys = [], []
                for name, b in r.items():
                    m = re.match(rf"BM_{impl}/{mode}/cap:{cap}/.*threads:(\d+)$", name)
                    if m:
                        xs.append(int(m.group(1)))
                        ys.append(b["items_per_second"] / 1e6)
                if xs:
                    pts = sorted(zip(xs, ys))
                    threads_seen.update(xs)
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, label=impl)
            ax.set_title(f"{mode}, capacity {cap:,}", fontsize=9)
            ax.set_yscale("log")
            ax.set_xticks(sorted(threads_seen) or [1, 2])
            ax.tick_params(labelsize=8)
            if mi == 0:
                ax.set_ylabel("M operations/s (log)")
            if ci == len(caps) - 1:
                ax.set_xlabel("threads")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    save(fig, "local_store_threads.png", "LocalStore throughput against threads",
         "LocalStore (adaptive W-TinyLFU) against an unsynchronised absl::flat_hash_map::find "
         "(RawFind, reads only: the ceiling), a 16-shard mutex+list LRU and "
         "tbb::concurrent_lru_cache; Zipf(0.99) over 1M keys; Read = get (put on a miss), "
         "Mixed90_10 = 10% puts, Write = puts only; at capacity 1,000,000 every read hits, at "
         "100,000 about 20% miss and evict. The machine has 2 vCPUs, so the threads axis stops at 2.")


# ---- 3. stampede timeline ----
def stampede():
    names = ["naive cache-aside", "single-flight", "single-flight + SWR"]
    data = []
    for mode in range(3):
        rows = []
        with open(os.path.join(WORK, f"stampede_{mode}.csv")) as f:
            next(f)
            for line in f:
                t, n, loads, mean, mx, slow = line.strip().split(",")
                rows.append((int(t), int(n), int(loads), float(mean), float(mx), int(slow)))
        data.append(rows)
    r = runs(bench_json("cache_bench.json"))
    fig, axes = plt.subplots(3, 3, figsize=(13, 7.5), sharex=True, sharey="row")
    summary = []
    for mode, rows in enumerate(data):
        t = [x[0] for x in rows]
        axes[0][mode].bar(t, [x[2] for x in rows], width=10, color="tab:red")
        axes[0][mode].set_title(names[mode], fontsize=10)
        axes[1][mode].bar(t, [x[5] for x in rows], width=10, color="tab:purple")
        axes[2][mode].plot(t, [max(x[3], 0.01) for x in rows], color="tab:blue", lw=0.8)
        axes[2][mode].set_yscale("log")
        axes[2][mode].set_xlabel("time (ms)")
        b = r.get(f"BM_Stampede/{mode}/iterations:1/real_time", {})
        slow = sum(x[5] for x in rows)
        summary.append((names[mode], int(b.get("loader_calls", 0)), slow, b.get("p50_us", 0),
                        b.get("p99_us", 0), b.get("p999_us", 0), b.get("max_us", 0)))
    axes[0][0].set_ylabel("loader calls\nper 10 ms")
    axes[1][0].set_ylabel("requests >= 5 ms\nper 10 ms")
    axes[2][0].set_ylabel("mean latency\n(us, log)")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    desc = "; ".join(f"{n}: {c} loader calls, {s} requests of 5 ms or more"
                     for n, c, s, *_ in summary)
    save(fig, "stampede.png", "Stampede timeline",
         "8 threads reading one hot key for 2 s; its ttl is 100 ms and the loader takes 10 ms "
         "(cache_bench BM_Stampede). Top: loader calls started per 10 ms; middle: requests that "
         "took 5 ms or more (half a load: they waited for one, or the loaded machine descheduled "
         "the thread); bottom: mean latency of the requests started in each 10 ms. Naive "
         "cache-aside sends a burst of up to 8 loads at each expiry; single-flight sends one, "
         "but every reader waits for it (the aligned spikes of slow requests and mean latency); "
         "with stale-while-revalidate the one load runs in the background and only the first, "
         "cold load is waited for. The background of 1-2 slow requests per 10 ms in every mode "
         f"is the shared machine descheduling 8 threads on 2 vCPUs. {desc}.")
    return summary


# ---- 4. RedisStore against raw hiredis ----
def redis():
    doc = bench_json("redis.json")
    if doc is None:
        return False
    r = runs(doc)

    def us(name, per=1):
        b = r.get(name)
        if b is None:
            return float("nan")
        t = b["real_time"]
        unit = b.get("time_unit", "ns")
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[unit]
        return t * scale / per

    groups = [("get", us("BM_RawHiredisGet/real_time"), us("BM_StoreGet/real_time")),
              ("put", us("BM_RawHiredisSet/real_time"), us("BM_StorePut/real_time")),
              ("100 keys by 100 gets", float("nan"), us("BM_StoreGet100Singles/real_time", 100)),
              ("100 keys by get_many (MGET)", float("nan"),
               us("BM_StoreGetMany100/real_time", 100)),
              ("1000 keys by put_many (pipeline)", float("nan"),
               us("BM_StorePutMany/1000/real_time", 1000))]
    fig, ax = plt.subplots(figsize=(10, 4))
    x = range(len(groups))
    ax.bar([i - 0.2 for i in x], [g[1] for g in groups], width=0.4, color="tab:gray",
           label="raw hiredis (blocking redisCommandArgv)")
    ax.bar([i + 0.2 for i in x], [g[2] for g in groups], width=0.4, color="tab:blue",
           label="RedisStore")
    for i, g in enumerate(groups):
        for dx, v in ((-0.2, g[1]), (0.2, g[2])):
            if not math.isnan(v):
                ax.text(i + dx, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x))
    ax.set_xticklabels([g[0] for g in groups], fontsize=8)
    ax.set_ylabel("microseconds per key")
    ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    save(fig, "redis.png", "RedisStore against raw hiredis",
         "Wall time per key against a private redis-server on loopback (redis_bench): one GET and "
         "one SET through a blocking hiredis context against RedisStore::get/put (pool borrow, "
         "deadline-driven I/O, entry encoding); 100 keys as 100 gets against one get_many (MGET); "
         f"put_many of 1000 entries (one pipeline). Raw: {groups[0][1]:.1f} / {groups[1][1]:.1f} us; "
         f"RedisStore: {groups[0][2]:.1f} / {groups[1][2]:.1f} us (get / put).")
    return True


# ---- 5. write-back put latency per fsync policy ----
def write_back():
    r = runs(bench_json("write.json"))
    modes = [("write_through", "write-through\n(1 ms Writer)"), ("write_back", "write-back\nno journal"),
             ("wb_journal_never", "journal\nkNever"), ("wb_journal_interval", "journal\nkEveryInterval"),
             ("wb_journal_every", "journal\nkEveryWrite")]
    fig, ax = plt.subplots(figsize=(10, 4))
    vals = []
    for i, (m, label) in enumerate(modes):
        b = r.get(next((n for n in r if n.startswith(f"BM_PutLatency/cache/{m}/") and "threads:1" in n), ""), {})
        p50, p99 = b.get("p50_us", float("nan")), b.get("p99_us", float("nan"))
        vals.append((label.replace("\n", " "), p50, p99))
        ax.bar(i - 0.2, p50, width=0.4, color="tab:blue", label="p50" if i == 0 else None)
        ax.bar(i + 0.2, p99, width=0.4, color="tab:red", label="p99" if i == 0 else None)
        for dx, v in ((-0.2, p50), (0.2, p99)):
            if not math.isnan(v):
                ax.text(i + dx, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(modes)))
    ax.set_xticklabels([m[1] for m in modes], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("put latency (us, log)")
    ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    save(fig, "write_back.png", "Write-back put latency per fsync policy",
         "Cache::put latency, one thread, over a LocalStore with a Writer that takes 1 ms per "
         "call (write_bench BM_PutLatency/cache): write-through waits for the Writer; write-back "
         "returns once the key is dirty, plus the journal append (kNever, kEveryInterval = 100 ms) "
         "or an fdatasync (kEveryWrite) on this machine's disk.")
    return vals


def metrics_overhead():
    r = runs(bench_json("metrics.json"))
    out = []
    for th in (1, 2):
        off = r.get(f"BM_CacheHitMetrics/metrics:0/real_time/threads:{th}")
        on = r.get(f"BM_CacheHitMetrics/metrics:1/real_time/threads:{th}")
        if off and on:
            out.append((th, off["real_time"], on["real_time"], off["cpu_time"], on["cpu_time"]))
    return out


os.makedirs(IMG, exist_ok=True)
for f in os.listdir(IMG):
    if f.endswith(".png"):
        os.remove(os.path.join(IMG, f))
hit_ratio()
local_store()
stampede_summary = stampede()
have_redis = redis()
write_vals = write_back()
overhead = metrics_overhead()

with open(os.path.join(DOCS, "benchmarks.md"), "w") as md:
    w = md.write
    w("# larder benchmarks\n\n")
    w(f"Made by `scripts/report.sh` from {STAMP}. Every chart below was made from that commit on "
      "that date; `ctest -R benchmarks_report_check` fails when this page names a chart that "
      "is not in docs/img/ or docs/img/ holds a chart this page does not name.\n\n")
    w("## Machine and command\n\n")
    w(f"- Machine: {META['machine']}\n")
    w(f"- Load: {META['load']}\n")
    w(f"- Build: release preset ({META['compiler']}, -O2)\n")
    w(f"- Command: `{META['command']}` ({META['elapsed']} s)\n\n")
    w("**The machine was shared.** Other builds and test runs were compiling on the same 2 vCPUs "
      "while this report ran (see the load averages above), so absolute numbers are low and "
      "noisy; compare within a chart (same binary, same minutes), not with other machines. "
      f"Benchmarks ran with short `--benchmark_min_time` ({META['min_time']} s) so the whole "
      "report takes minutes; scripts/bench_local_store.sh and friends give steadier numbers.\n\n")
    for i, (name, title, caption) in enumerate(charts, 1):
        w(f"## {i}. {title}\n\n")
        w(f"![{title}](img/{name})\n\n")
        w(f"*Figure {i}. {caption} Made from {STAMP}.*\n\n")
        if name == "stampede.png":
            w("| mode | loader calls | requests >= 5 ms | p50 us | p99 us | p99.9 us | max us |\n"
              "|---|---:|---:|---:|---:|---:|---:|\n")
            for n, c, slow, p50, p99, p999, mx in stampede_summary:
                w(f"| {n} | {c} | {slow} | {p50:.1f} | {p99:.1f} | {p999:.0f} | {mx:.0f} |\n")
            w("\n")
        if name == "write_back.png":
            w("| mode | p50 us | p99 us |\n|---|---:|---:|\n")
            for n, p50, p99 in write_vals:
                w(f"| {n} | {p50:.1f} | {p99:.1f} |\n")
            w("\n")
    if not have_redis:
        w("RedisStore against raw hiredis: not run (no redis-server was found).\n\n")
    w("PostgreSQL (the catalog example, bench/pg_bench) is not re-run by this script: it needs "
      "two PostgreSQL servers and ~2 minutes; its last results are in bench/results/pg_bench.txt.\n\n")
    w("## What metrics cost\n\n")
    w("`cache_bench` BM_CacheHitMetrics: the hit path (Cache::get_or_load on a fresh key over a "
      "LocalStore) with `CacheOptions::record_latency` off and on, in the same binary, medians of "
      "interleaved repetitions. On, one call in 64 per thread times its Store::get.\n\n")
    w("| threads | off ns (wall) | on ns (wall) | on/off wall | off ns (CPU) | on ns (CPU) | on/off CPU |\n"
      "|---:|---:|---:|---:|---:|---:|---:|\n")
    for th, off, on, offc, onc in overhead:
        w(f"| {th} | {off:.1f} | {on:.1f} | {on / off:.3f} | {offc:.1f} | {onc:.1f} | {onc / offc:.3f} |\n")
    w("\n")
print(f"report_charts: {len(charts)} charts in {IMG}, {os.path.join(DOCS, 'benchmarks.md')}")
