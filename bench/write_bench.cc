// SPDX-License-Identifier: Apache-2.0
//
// write_bench: the write path against a slow system of record (a Writer that
// takes 1 ms per call, like a database round trip).
//
//   BM_PutLatency/<layer>/<mode>   put() latency p50/p99 (counters p50_us, p99_us)
//     layer: cache  = larder::Cache<K, V> over a LocalStore, configured by
//                     CacheOptions (write_mode, write_back.journal,
//                     write_back.fsync, ...): what users get;
//            engine = internal::WriteBack alone (write-through: the bare
//                     Writer call), to see what the Cache layer adds.
//     mode:  write_through        one Writer call per put (kWriteThrough)
//            write_back           kWriteBack, no journal
//            wb_journal_never     + journal, FsyncPolicy::kNever
//            wb_journal_interval  + journal, kEveryInterval (100 ms)
//            wb_journal_every     + journal, kEveryWrite (group commit)
//     ".../threads:4" rows run 4 putting threads on one instance.
//   BM_FlushThroughput/<layer>/max_batch:<n>  flush() of 1000 dirty keys with
//     at most n keys per Writer call; keys_per_s.
//
// Run: build with the release preset, then
//   build/release/bench/write_bench --benchmark_counters_tabular=true
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "larder/cache.h"
#include "larder/internal/write_back.h"
#include "larder/local_store.h"

namespace {

using K = std::string;
using V = std::int64_t;
using larder::internal::FsyncPolicy;
using Wb = larder::internal::WriteBack<K, V>;

// A system of record that takes `latency` per call, batch or not.
larder::Writer<K, V> slow_writer(std::chrono::microseconds latency) {
  return {.write =
              [latency](std::span<const std::pair<K, V>>) {
                std::this_thread::sleep_for(latency);
                return absl::OkStatus();
              },
          .erase =
              [latency](std::span<const K>) {
                std::this_thread::sleep_for(latency);
                return absl::OkStatus();
              }};
}

// The seam for moving to Cache (see the file comment).
class WritePath {
 public:
  virtual ~WritePath() = default;
  virtual absl::Status put(const K& k, V v) = 0;
  virtual absl::Status flush() = 0;
};

class WriteThroughPath final : public WritePath {
 public:
  explicit WriteThroughPath(larder::Writer<K, V> w) : w_(std::move(w)) {}
  absl::Status put(const K& k, V v) override {
    const std::pair<K, V> one[] = {{k, v}};
    return w_.write(std::span<const std::pair<K, V>>(one));
  }
  absl::Status flush() override { return absl::OkStatus(); }

 private:
  larder::Writer<K, V> w_;
};

class WriteBackPath final : public WritePath {
 public:
  WriteBackPath(larder::Writer<K, V> w, Wb::Options o) : wb_(std::move(w), std::move(o)) {}
  absl::Status put(const K& k, V v) override { return wb_.put(k, v); }
  absl::Status flush() override { return wb_.flush(); }

 private:
  Wb wb_;
};

// Cache<K, V> over a LocalStore, in the matching CacheOptions.
class CachePath final : public WritePath {
 public:
  explicit CachePath(larder::CacheOptions<K, V> o)
      : cache_(std::make_shared<larder::LocalStore<K, V>>(
                   larder::LocalStoreOptions{.max_entries = 100'000}),
               std::move(o)) {}
  absl::Status put(const K& k, V v) override { return cache_.put(k, v); }
  absl::Status flush() override { return cache_.flush(); }

 private:
  larder::Cache<K, V> cache_;
};

enum Mode { kThrough, kBack, kJournalNever, kJournalInterval, kJournalEvery };
enum Layer { kEngine, kCache };

std::string g_dir;
std::unique_ptr<WritePath> g_path;

std::string bench_dir() {
  if (g_dir.empty()) {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "larder_write_bench_XXXXXX").string();
    g_dir = ::mkdtemp(tmpl.data());
  }
  return g_dir;
}

std::unique_ptr<WritePath> make_path(Mode mode, std::size_t max_batch, Layer layer = kEngine) {
  auto w = slow_writer(std::chrono::milliseconds(1));
  static int n = 0;
  const std::string journal =
      mode >= kJournalNever ? bench_dir() + "/wb" + std::to_string(n++) : "";
  const FsyncPolicy fsync = mode == kJournalNever      ? FsyncPolicy::kNever
                            : mode == kJournalInterval ? FsyncPolicy::kEveryInterval
                                                       : FsyncPolicy::kEveryWrite;
  if (layer == kCache) {
    larder::CacheOptions<K, V> o;
    o.write_mode =
        mode == kThrough ? larder::WriteMode::kWriteThrough : larder::WriteMode::kWriteBack;
    o.writer = w;
    o.write_back.delay = std::chrono::milliseconds(100);
    o.write_back.batch = max_batch;
    o.write_back.journal = journal;
    o.write_back.fsync = fsync;
    o.write_back.fsync_interval = std::chrono::milliseconds(100);
    return std::make_unique<CachePath>(std::move(o));
  }
  if (mode == kThrough) return std::make_unique<WriteThroughPath>(w);
  Wb::Options o{.delay = std::chrono::milliseconds(100), .max_batch = max_batch};
  if (!journal.empty()) {
    o.journal_path = journal;
    o.fsync = fsync;
    o.fsync_interval = std::chrono::milliseconds(100);
  }
  return std::make_unique<WriteBackPath>(w, o);
}

void setup_put(const benchmark::State& state) {
  g_path = make_path(static_cast<Mode>(state.range(0)), 256, static_cast<Layer>(state.range(1)));
}
void teardown(const benchmark::State&) { g_path.reset(); }

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const std::size_t i =
      std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

void BM_PutLatency(benchmark::State& state) {
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(state.max_iterations));
  const std::string prefix = "t" + std::to_string(state.thread_index()) + "-";
  V i = 0;
  for (auto _ : state) {
    const K key = prefix + std::to_string(i % 1000);
    const auto t0 = std::chrono::steady_clock::now();
    absl::Status s = g_path->put(key, i);
    const auto t1 = std::chrono::steady_clock::now();
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    ++i;
  }
  state.counters["p50_us"] =
      benchmark::Counter(percentile(us, 0.50), benchmark::Counter::kAvgThreads);
  state.counters["p99_us"] =
      benchmark::Counter(percentile(us, 0.99), benchmark::Counter::kAvgThreads);
  state.SetItemsProcessed(state.iterations());
}

const char* kModeNames[] = {"write_through", "write_back", "wb_journal_never",
                            "wb_journal_interval", "wb_journal_every"};

void register_put(Layer layer, Mode m, int threads, benchmark::IterationCount iters) {
  benchmark::RegisterBenchmark(
      (std::string("BM_PutLatency/") + (layer == kCache ? "cache/" : "engine/") + kModeNames[m])
          .c_str(),
      BM_PutLatency)
      ->Args({m, layer})
      ->Setup(setup_put)
      ->Teardown(teardown)
      ->Threads(threads)
      ->Iterations(iters)
      ->UseRealTime();
}

// flush() of 1000 dirty keys, with max_batch keys per Writer call.
void BM_FlushThroughput(benchmark::State& state) {
  const auto max_batch = static_cast<std::size_t>(state.range(0));
  auto path = make_path(kBack, max_batch, static_cast<Layer>(state.range(1)));
  constexpr int kKeys = 1000;
  V v = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (int k = 0; k < kKeys; ++k) (void)path->put("k" + std::to_string(k), ++v);
    state.ResumeTiming();
    absl::Status s = path->flush();
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations() * kKeys);
  state.counters["keys_per_s"] = benchmark::Counter(static_cast<double>(state.iterations() * kKeys),
                                                    benchmark::Counter::kIsRate);
}

int register_all() {
  for (Layer layer : {kCache, kEngine}) {
    register_put(layer, kThrough, 1, 1000);
    register_put(layer, kBack, 1, 50'000);
    register_put(layer, kJournalNever, 1, 50'000);
    register_put(layer, kJournalInterval, 1, 50'000);
    register_put(layer, kJournalEvery, 1, 2'000);
    register_put(layer, kThrough, 4, 500);
    register_put(layer, kBack, 4, 50'000);
    register_put(layer, kJournalEvery, 4, 1'000);
    benchmark::RegisterBenchmark(
        (std::string("BM_FlushThroughput/") + (layer == kCache ? "cache" : "engine")).c_str(),
        BM_FlushThroughput)
        ->ArgNames({"max_batch", "layer"})
        ->Args({1, layer})
        ->Args({16, layer})
        ->Args({256, layer})
        ->Iterations(2)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  if (!g_dir.empty()) std::filesystem::remove_all(g_dir, ec);
  return 0;
}
