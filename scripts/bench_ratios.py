#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
#
# bench_ratios.py: runs a Google Benchmark binary ROUNDS times (each run with
# interleaved repetitions), then prints, for every benchmark, the median wall
# and CPU time over all repetitions of all rounds and its ratio to a baseline
# benchmark of the same binary (baseline time / this time: a rate, so > 1 is
# faster than the baseline). These machines are noisy: many short interleaved
# runs, one median, and ratios only within one binary.
#
# Usage: scripts/bench_ratios.py BINARY FILTER BASELINE [ROUNDS] [-- extra benchmark flags]
#   e.g. scripts/bench_ratios.py build/release/bench/redis_bench \
#          'Mget100|CacheGetMany|StoreGetMany100' BM_RawHiredisMget100 8
# Env: REPS (repetitions per round, default 6), MIN_TIME (default 0.15).
import json
import os
import statistics
import subprocess
import sys
import tempfile


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        extra = args[args.index("--") + 1:]
        args = args[:args.index("--")]
    if len(args) < 3:
        sys.exit("usage: bench_ratios.py BINARY FILTER BASELINE [ROUNDS] [-- extra benchmark flags]")
    binary, flt, baseline = args[0], args[1], args[2]
    rounds = int(args[3]) if len(args) > 3 else 5
    reps = os.environ.get("REPS", "6")
    min_time = os.environ.get("MIN_TIME", "0.15")
    real, cpu = {}, {}
    with tempfile.TemporaryDirectory() as d:
        for r in range(rounds):
            out = os.path.join(d, f"r{r}.json")
            subprocess.run([binary, f"--benchmark_filter={flt}",
                            f"--benchmark_repetitions={reps}",
                            "--benchmark_enable_random_interleaving=true",
                            f"--benchmark_min_time={min_time}",
                            f"--benchmark_out={out}", "--benchmark_out_format=json"] + extra,
                           check=True, stdout=subprocess.DEVNULL)
            with open(out) as f:
                for b in json.load(f)["benchmarks"]:
                    if b.get("run_type") != "iteration" or b.get("error_occurred"):
                        continue
                    name = b["run_name"]
                    real.setdefault(name, []).append(b["real_time"])
                    cpu.setdefault(name, []).append(b["cpu_time"])
    if not any(n.startswith(baseline) for n in real):
        sys.exit(f"baseline {baseline} did not run")
    base = next(n for n in real if n.startswith(baseline))
    br, bc = statistics.median(real[base]), statistics.median(cpu[base])
    print(f"# {binary} {flt}: {rounds} rounds x {reps} repetitions, min_time {min_time}; "
          f"medians over all; rate vs {base} (its time / this time)")
    print(f"{'benchmark':<44} {'n':>3} {'wall us':>9} {'cpu us':>9} {'wall rate':>9} {'cpu rate':>9}")
    for name in sorted(real):
        mr, mc = statistics.median(real[name]), statistics.median(cpu[name])
        print(f"{name:<44} {len(real[name]):>3} {mr / 1000:>9.2f} {mc / 1000:>9.2f} "
              f"{br / mr:>9.3f} {bc / mc:>9.3f}")


if __name__ == "__main__":
    main()
