// SPDX-License-Identifier: Apache-2.0
//
// local_store_bench: LocalStore throughput and memory against baselines.
//
// Workload: Zipf(0.99) over 1M u64 keys (pre-generated, each thread starting
// at its own offset), values u64. Modes:
//   Read   get; on a miss, put (insert on miss)
//   Mixed  90% as Read, 10% put
//   Write  100% put
// Capacities: 100k (misses and evictions) and 1M (>= keyspace, prefilled: all hits).
// Implementations:
//   RawFind      unsynchronised absl::flat_hash_map find, prefilled (the limit; reads only)
//   MutexLru     std::mutex + std::list + std::unordered_map
//   ShardedLru   16 x MutexLru by hash
//   TbbLru       tbb::concurrent_lru_cache (its operator[] loads on miss; puts go through it too)
//   LocalStore   default policy (adaptive W-TinyLFU), default shards
//   LocalStoreLru  EvictionPolicy::kLru
//   LocalStorePeek  peek() instead of get(): the lookup alone, no access recorded
//                 and no counters (reads only; shows what recording costs)
//   LocalStoreTtl  as LocalStore, every entry with a 1 h ttl (the timer wheel is
//                 in use: hits read the clock and check the shard's expiry deadline)
//   LocalStoreMiss, LocalStoreTtlMiss  reads only, every get misses (the key is
//                 salted) in a store filled as LocalStore / LocalStoreTtl: the
//                 miss path, which checks the shard's expiry deadline too
// LARDER_BENCH_SHARDS=N sets LocalStoreOptions::shards (default: chosen by the store).
// BM_PairedSlices: LocalStore and Sharded16 alternating 200k-request slices in
// one thread, each charged its thread CPU time (robust to a loaded machine).
// BM_BytesPerEntry: heap bytes per entry (mallinfo2 delta) at 1M u64->u64 entries,
// minus the 16 bytes of key and value; /1 after also replaying 4M Zipf
// requests over twice the key space (shadows, retired nodes at working size).
//
// Run: build/release/bench/local_store_bench --benchmark_filter=... --benchmark_min_time=0.5
#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <list>
#include <memory>
#include <mutex>
#include <random>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "benchmark/benchmark.h"
#include "larder/local_store.h"

#if LARDER_BENCH_HAVE_TBB
#define TBB_PREVIEW_CONCURRENT_LRU_CACHE 1
#include <tbb/concurrent_lru_cache.h>
#endif

namespace {

constexpr std::uint64_t kKeys = 1'000'000;
constexpr std::size_t kTraceLen = 1 << 22;

const std::vector<std::uint64_t>& zipf_trace() {
  static const std::vector<std::uint64_t> trace = [] {
    std::vector<double> cdf(kKeys);
    double sum = 0;
    for (std::uint64_t i = 0; i < kKeys; ++i) {
      sum += 1.0 / std::pow(static_cast<double>(i + 1), 0.99);
      cdf[i] = sum;
    }
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> u(0, sum);
    std::vector<std::uint64_t> t(kTraceLen);
    for (auto& k : t) {
      const auto rank = static_cast<std::uint64_t>(
          std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
      k = larder::internal::mix_hash(rank + 1);  // scatter ranks over the key space
    }
    return t;
  }();
  return trace;
}

// ---- Baselines ----
class MutexLru {
 public:
  explicit MutexLru(std::size_t cap) : cap_(cap) { map_.reserve(cap); }
  bool get(std::uint64_t k, std::uint64_t& v) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = map_.find(k);
    if (it == map_.end()) return false;
    order_.splice(order_.end(), order_, it->second);
    v = it->second->second;
    return true;
  }
  void put(std::uint64_t k, std::uint64_t v) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = map_.find(k);
    if (it != map_.end()) {
      it->second->second = v;
      order_.splice(order_.end(), order_, it->second);
      return;
    }
    order_.emplace_back(k, v);
    map_.emplace(k, std::prev(order_.end()));
    if (map_.size() > cap_) {
      map_.erase(order_.front().first);
      order_.pop_front();
    }
  }

 private:
  std::mutex mu_;
  std::size_t cap_;
  std::list<std::pair<std::uint64_t, std::uint64_t>> order_;
  std::unordered_map<std::uint64_t, std::list<std::pair<std::uint64_t, std::uint64_t>>::iterator>
      map_;
};

class ShardedLru {
 public:
  explicit ShardedLru(std::size_t cap) {
    for (auto& s : shards_) s = std::make_unique<MutexLru>(cap / 16 + 1);
  }
  bool get(std::uint64_t k, std::uint64_t& v) { return shard(k).get(k, v); }
  void put(std::uint64_t k, std::uint64_t v) { shard(k).put(k, v); }

 private:
  MutexLru& shard(std::uint64_t k) { return *shards_[larder::internal::mix_hash(k) >> 60]; }
  std::unique_ptr<MutexLru> shards_[16];
};

struct LocalAdapter {
  // ttl > 0: every entry expires ttl after the adapter was made.
  explicit LocalAdapter(std::size_t cap, larder::EvictionPolicy p,
                        std::chrono::nanoseconds ttl = std::chrono::nanoseconds(0))
      : store({.max_entries = cap, .shards = env_shards(), .policy = p}),
        until(ttl.count() > 0 ? larder::system_clock()->now() + ttl : larder::TimePoint::max()) {}
  // LARDER_BENCH_SHARDS=N overrides the default shard count (experiments).
  static std::size_t env_shards() {
    const char* v = std::getenv("LARDER_BENCH_SHARDS");
    return v != nullptr ? std::strtoul(v, nullptr, 10) : 0;
  }
  bool get(std::uint64_t k, std::uint64_t& v) {
    auto got = store.get(k);
    if (!got->has_value()) return false;
    v = (*got)->value;
    return true;
  }
  void put(std::uint64_t k, std::uint64_t v) { (void)store.put(k, {v, until, until}); }
  larder::LocalStore<std::uint64_t, std::uint64_t> store;
  larder::TimePoint until;
};
struct LocalStoreImpl : LocalAdapter {
  explicit LocalStoreImpl(std::size_t cap)
      : LocalAdapter(cap, larder::EvictionPolicy::kAdaptiveTinyLfu) {}
};
struct LocalStorePeekImpl : LocalAdapter {
  explicit LocalStorePeekImpl(std::size_t cap) : LocalAdapter(cap, larder::EvictionPolicy::kLru) {}
  bool get(std::uint64_t k, std::uint64_t& v) {
    auto got = store.peek(k);
    if (!got) return false;
    v = got->value;
    return true;
  }
};
struct LocalStoreLruImpl : LocalAdapter {
  explicit LocalStoreLruImpl(std::size_t cap) : LocalAdapter(cap, larder::EvictionPolicy::kLru) {}
};
struct LocalStoreTtlImpl : LocalAdapter {
  explicit LocalStoreTtlImpl(std::size_t cap)
      : LocalAdapter(cap, larder::EvictionPolicy::kAdaptiveTinyLfu, std::chrono::hours(1)) {}
};
// MissOn: filled with the bound's worth of keys at construction; every get()
// then looks up a key the store never holds, and put() does nothing (the
// benchmark's insert on miss would otherwise dominate).
template <class Base>
struct MissOn : Base {
  explicit MissOn(std::size_t cap) : Base(cap) {
    for (std::uint64_t r = 1; r <= std::min<std::uint64_t>(cap, kKeys); ++r) {
      Base::put(larder::internal::mix_hash(r), r);
    }
  }
  bool get(std::uint64_t k, std::uint64_t& v) { return Base::get(k ^ 0x5bd1e995u, v); }
  void put(std::uint64_t, std::uint64_t) {}
};
using LocalStoreMissImpl = MissOn<LocalStoreImpl>;
using LocalStoreTtlMissImpl = MissOn<LocalStoreTtlImpl>;

struct RawFind {
  explicit RawFind(std::size_t) {
    for (std::uint64_t r = 1; r <= kKeys; ++r) map.emplace(larder::internal::mix_hash(r), r);
  }
  bool get(std::uint64_t k, std::uint64_t& v) {
    auto it = map.find(k);
    if (it == map.end()) return false;
    v = it->second;
    return true;
  }
  void put(std::uint64_t, std::uint64_t) {}
  absl::flat_hash_map<std::uint64_t, std::uint64_t> map;
};

#if LARDER_BENCH_HAVE_TBB
std::uint64_t tbb_load(std::uint64_t k) { return k; }
struct TbbLru {
  explicit TbbLru(std::size_t cap) : cache(&tbb_load, cap) {}
  bool get(std::uint64_t k, std::uint64_t& v) {
    auto h = cache[k];  // loads on a miss
    v = h.value();
    return true;
  }
  void put(std::uint64_t k, std::uint64_t) { (void)cache[k]; }
  tbb::concurrent_lru_cache<std::uint64_t, std::uint64_t, std::uint64_t (*)(std::uint64_t)> cache;
};
#endif

enum Mode { kRead = 0, kMixed = 1, kWrite = 2 };

template <class Impl>
Impl*& instance() {
  static Impl* p = nullptr;
  return p;
}

template <class Impl>
void setup(const benchmark::State& state) {
  const auto cap = static_cast<std::size_t>(state.range(1));
  instance<Impl>() = new Impl(cap);
  if (cap >= kKeys) {  // prefill: every read hits
    for (std::uint64_t r = 1; r <= kKeys; ++r) {
      instance<Impl>()->put(larder::internal::mix_hash(r), r);
    }
  }
}
template <class Impl>
void teardown(const benchmark::State&) {
  delete instance<Impl>();
  instance<Impl>() = nullptr;
}

template <class Impl>
void BM_Store(benchmark::State& state) {
  const auto mode = static_cast<Mode>(state.range(0));
  const auto& trace = zipf_trace();
  Impl& impl = *instance<Impl>();
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * (kTraceLen / 7);
  std::uint64_t sum = 0, hits = 0, ops = 0;
  for (auto _ : state) {
    for (int b = 0; b < 64; ++b) {
      const std::uint64_t k = trace[i++ & (kTraceLen - 1)];
      std::uint64_t v = 0;
      if (mode == kWrite || (mode == kMixed && (i % 10) == 0)) {
        impl.put(k, k);
      } else if (impl.get(k, v)) {
        sum += v;
        ++hits;
      } else {
        impl.put(k, k);
      }
    }
    ops += 64;
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(static_cast<std::int64_t>(ops));
  state.counters["hit_ratio"] =
      benchmark::Counter(static_cast<double>(hits) / static_cast<double>(ops ? ops : 1),
                         benchmark::Counter::kAvgThreads);
}

template <class Impl>
void register_impl(const char* name, bool reads_only) {
  for (int mode : {kRead, kMixed, kWrite}) {
    if (reads_only && mode != kRead) continue;
    for (std::int64_t cap : {std::int64_t{100'000}, std::int64_t{1'000'000}}) {
      static const char* kModes[] = {"Read", "Mixed90_10", "Write"};
      benchmark::RegisterBenchmark(
          (std::string("BM_") + name + "/" + kModes[mode] + "/cap:" + std::to_string(cap)).c_str(),
          BM_Store<Impl>)
          ->Args({mode, cap})
          ->Setup(setup<Impl>)
          ->Teardown(teardown<Impl>)
          ->Threads(1)
          ->Threads(2)
          ->UseRealTime();
    }
  }
}

// ---- Paired slices (one thread): LocalStore against Sharded16 by thread CPU time ----
// Both live in one process; each iteration runs a slice of kSliceOps
// requests on one, then on the other, and charges each its thread CPU time
// (CLOCK_THREAD_CPUTIME_ID). On a shared machine a neighbour's load then
// slows both alike and time spent descheduled is charged to neither, where
// the wall-clock rows above swing by 10x between phases. Counters:
// ls_cpu_Mops, sharded_cpu_Mops (M requests per CPU second) and their ratio.
// A slice evicts part of the other's working set from the caches, so both
// start a slice a little colder than when run alone.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

template <class Impl>
std::uint64_t run_slice(Impl& impl, Mode mode, std::size_t& i, std::size_t n) {
  const auto& trace = zipf_trace();
  std::uint64_t sum = 0;
  for (std::size_t j = 0; j < n; ++j) {
    const std::uint64_t k = trace[i++ & (kTraceLen - 1)];
    std::uint64_t v = 0;
    if (mode == kWrite || (mode == kMixed && (i % 10) == 0)) {
      impl.put(k, k);
    } else if (impl.get(k, v)) {
      sum += v;
    } else {
      impl.put(k, k);
    }
  }
  return sum;
}

void BM_PairedSlices(benchmark::State& state) {
  constexpr std::size_t kSliceOps = 200'000;
  const auto mode = static_cast<Mode>(state.range(0));
  const auto cap = static_cast<std::size_t>(state.range(1));
  LocalStoreImpl ls(cap);
  ShardedLru sharded(cap);
  if (cap >= kKeys) {
    for (std::uint64_t r = 1; r <= kKeys; ++r) {
      ls.put(larder::internal::mix_hash(r), r);
      sharded.put(larder::internal::mix_hash(r), r);
    }
  }
  std::size_t il = 0, is = 0;
  std::uint64_t sum = run_slice(ls, mode, il, 1'000'000) + run_slice(sharded, mode, is, 1'000'000);
  double t_ls = 0, t_sh = 0;
  for (auto _ : state) {
    const double t0 = thread_cpu_seconds();
    sum += run_slice(ls, mode, il, kSliceOps);
    const double t1 = thread_cpu_seconds();
    sum += run_slice(sharded, mode, is, kSliceOps);
    const double t2 = thread_cpu_seconds();
    t_ls += t1 - t0;
    t_sh += t2 - t1;
  }
  benchmark::DoNotOptimize(sum);
  const double ops = static_cast<double>(state.iterations() * kSliceOps);
  state.counters["ls_cpu_Mops"] = ops / t_ls / 1e6;
  state.counters["sharded_cpu_Mops"] = ops / t_sh / 1e6;
  state.counters["ratio"] = t_sh / t_ls;
}

// ---- Memory ----
std::size_t heap_in_use() {
  malloc_trim(0);
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// state.range(0) == 1: also replays the Zipf trace over a key space twice
// the bound (hits, misses, evictions), so the policy's per-shard structures
// (the adaptive policy's shadows) reach their working size.
template <class Impl>
void BM_BytesPerEntry(benchmark::State& state) {
  const bool churn = state.range(0) == 1;
  const auto& trace = zipf_trace();
  for (auto _ : state) {
    const std::size_t before = heap_in_use();
    auto impl = std::make_unique<Impl>(kKeys);
    for (std::uint64_t r = 1; r <= kKeys; ++r) impl->put(larder::internal::mix_hash(r), r);
    if (churn) {
      std::uint64_t v = 0;
      for (std::size_t i = 0; i < trace.size(); ++i) {
        const std::uint64_t k = trace[i] ^ (i & 1 ? 0x5bd1e995u : 0);  // half the keys are new
        if (!impl->get(k, v)) impl->put(k, k);
      }
    }
    const std::size_t after = heap_in_use();
    state.counters["bytes_per_entry_total"] =
        static_cast<double>(after - before) / static_cast<double>(kKeys);
    state.counters["bytes_per_entry_overhead"] =
        static_cast<double>(after - before) / static_cast<double>(kKeys) - 16.0;
  }
}

const bool registered = [] {
  (void)zipf_trace();
  register_impl<RawFind>("RawFind", /*reads_only=*/true);
  register_impl<MutexLru>("MutexLru", false);
  register_impl<ShardedLru>("ShardedLru16", false);
#if LARDER_BENCH_HAVE_TBB
  register_impl<TbbLru>("TbbLru", false);
#endif
  register_impl<LocalStoreImpl>("LocalStore", false);
  register_impl<LocalStoreLruImpl>("LocalStoreLru", false);
  register_impl<LocalStorePeekImpl>("LocalStorePeek", true);
  register_impl<LocalStoreTtlImpl>("LocalStoreTtl", false);
  register_impl<LocalStoreMissImpl>("LocalStoreMiss", true);
  register_impl<LocalStoreTtlMissImpl>("LocalStoreTtlMiss", true);
  for (int mode : {kRead, kMixed, kWrite}) {
    static const char* kModes[] = {"Read", "Mixed90_10", "Write"};
    for (std::int64_t cap : {std::int64_t{100'000}, std::int64_t{1'000'000}}) {
      benchmark::RegisterBenchmark(
          (std::string("BM_PairedSlices/") + kModes[mode] + "/cap:" + std::to_string(cap)).c_str(),
          BM_PairedSlices)
          ->Args({mode, cap})
          ->Iterations(30)
          ->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::RegisterBenchmark("BM_BytesPerEntry/LocalStore", BM_BytesPerEntry<LocalStoreImpl>)
      ->Arg(0)
      ->Arg(1)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_BytesPerEntry/LocalStoreLru",
                               BM_BytesPerEntry<LocalStoreLruImpl>)
      ->Arg(0)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_BytesPerEntry/MutexLru", BM_BytesPerEntry<MutexLru>)
      ->Arg(0)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_BytesPerEntry/RawFlatHashMap", BM_BytesPerEntry<RawFind>)
      ->Arg(0)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
