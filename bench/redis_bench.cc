// SPDX-License-Identifier: Apache-2.0
//
// RedisStore against raw hiredis, on the server named by
// LARDER_BENCH_REDIS_HOST / LARDER_BENCH_REDIS_PORT (skips cleanly when unset).
//
//   BM_RawHiredisGet / BM_StoreGet      one GET: a blocking redisContext with
//                                       redisCommandArgv vs RedisStore::get
//                                       (pool borrow, deadline I/O, decode)
//   BM_RawHiredisSet / BM_StorePut      one SET ... PX, the same way
//   BM_StoreGet100Singles / BM_StoreGetMany100
//                                       100 keys: 100 gets vs one get_many (MGET)
//   BM_RawHiredisMget100 / BM_CacheGetMany100
//                                       100 keys, 100-byte values: one raw MGET on a
//                                       blocking hiredis connection (each element
//                                       read) vs Cache::get_many over RedisStore (all
//                                       hits; one pooled connection). Issue 17's
//                                       target: the cache at >= 0.9x MGET's rate.
//   BM_CacheGetManyAligned100           the same through get_many_aligned (the
//                                       answer in key order: no result map)
//   BM_StorePutMany/N                   put_many throughput (one pipeline of N SETs);
//                                       compare items_per_second with
//                                       `redis-benchmark -P 16 -t set -q`
//   BM_ClusterGetMany100                get_many(100) over a Redis Cluster (keys on
//                                       every master): compare with BM_StoreGetMany100
//   BM_ClusterGet / BM_RawHiredisGetOwner
//                                       RedisStore::get over the cluster vs a raw
//                                       hiredis GET sent straight to the key's master
// The cluster benchmarks run when LARDER_BENCH_REDIS_CLUSTER=host:port[,...] is set.
// All timings are wall time (UseRealTime): the client mostly waits on the server.
//
// Run: LARDER_BENCH_REDIS_HOST=127.0.0.1 LARDER_BENCH_REDIS_PORT=6399
//      LARDER_BENCH_REDIS_CLUSTER=127.0.0.1:7000 ./redis_bench   (one command line)
#include <hiredis/hiredis.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "get_many_bench.h"
#include "larder/cache.h"
#include "larder/redis.h"

namespace {

using Store = larder::RedisStore<std::string, std::string>;

const char* g_host = nullptr;
int g_port = 0;
const std::string kPrefix = "larder-bench:";
const std::string kValue(100, 'v');

larder::RedisOptions options() {
  larder::RedisOptions o;
  o.host = g_host;
  o.port = g_port;
  o.key_prefix = kPrefix;
  o.command_timeout = std::chrono::milliseconds(1000);
  return o;
}

larder::Entry<std::string> entry() {
  const auto now = std::chrono::system_clock::now();
  return {kValue, now + std::chrono::minutes(1), now + std::chrono::minutes(2)};
}

struct RawConn {
  RawConn() {
    c = redisConnect(g_host, g_port);
    if (c == nullptr || c->err) std::abort();
  }
  ~RawConn() { redisFree(c); }
  redisContext* c;
};

void BM_RawHiredisGet(benchmark::State& state) {
  RawConn raw;
  const std::string key = kPrefix + "raw-get";
  freeReplyObject(
      redisCommand(raw.c, "SET %b %b", key.data(), key.size(), kValue.data(), kValue.size()));
  const char* argv[] = {"GET", key.data()};
  const size_t lens[] = {3, key.size()};
  for (auto _ : state) {
    auto* r = static_cast<redisReply*>(redisCommandArgv(raw.c, 2, argv, lens));
    if (r == nullptr || r->type != REDIS_REPLY_STRING) state.SkipWithError("GET failed");
    benchmark::DoNotOptimize(r->str);
    freeReplyObject(r);
  }
}
BENCHMARK(BM_RawHiredisGet)->UseRealTime();

void BM_StoreGet(benchmark::State& state) {
  Store store(options());
  if (!store.put("get", entry()).ok()) state.SkipWithError("put failed");
  for (auto _ : state) {
    auto got = store.get("get");
    if (!got.ok() || !got->has_value()) state.SkipWithError("get failed");
    benchmark::DoNotOptimize(got);
  }
}
BENCHMARK(BM_StoreGet)->UseRealTime();

void BM_RawHiredisSet(benchmark::State& state) {
  RawConn raw;
  const std::string key = kPrefix + "raw-set";
  const std::string value = std::string(18, 'h') + kValue;  // same bytes as a larder entry
  const char* argv[] = {"SET", key.data(), value.data(), "PX", "120000"};
  const size_t lens[] = {3, key.size(), value.size(), 2, 6};
  for (auto _ : state) {
    auto* r = static_cast<redisReply*>(redisCommandArgv(raw.c, 5, argv, lens));
    if (r == nullptr || r->type == REDIS_REPLY_ERROR) state.SkipWithError("SET failed");
    freeReplyObject(r);
  }
}
BENCHMARK(BM_RawHiredisSet)->UseRealTime();

void BM_StorePut(benchmark::State& state) {
  Store store(options());
  for (auto _ : state) {
    if (!store.put("put", entry()).ok()) state.SkipWithError("put failed");
  }
}
BENCHMARK(BM_StorePut)->UseRealTime();

std::vector<std::string> keys100() {
  std::vector<std::string> k;
  for (int i = 0; i < 100; ++i) k.push_back("many" + std::to_string(i));
  return k;
}

void BM_StoreGet100Singles(benchmark::State& state) {
  Store store(options());
  const auto keys = keys100();
  for (const auto& k : keys) (void)store.put(k, entry());
  for (auto _ : state) {
    for (const auto& k : keys) {
      auto got = store.get(k);
      if (!got.ok()) state.SkipWithError("get failed");
      benchmark::DoNotOptimize(got);
    }
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_StoreGet100Singles)->UseRealTime();

void BM_StoreGetMany100(benchmark::State& state) {
  Store store(options());
  const auto keys = keys100();
  for (const auto& k : keys) (void)store.put(k, entry());
  for (auto _ : state) {
    auto got = store.get_many(keys);
    if (!got.ok()) state.SkipWithError("get_many failed");
    benchmark::DoNotOptimize(got);
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_StoreGetMany100)->UseRealTime();

void BM_RawHiredisMget100(benchmark::State& state) {
  RawConn raw;
  const auto keys = keys100();
  std::vector<std::string> rks;
  for (const auto& k : keys) rks.push_back(kPrefix + k);
  {
    Store store(options());  // the same entries BM_CacheGetMany100 reads
    for (const auto& k : keys) (void)store.put(k, entry());
  }
  std::vector<const char*> argv{"MGET"};
  std::vector<size_t> lens{4};
  for (const auto& k : rks) {
    argv.push_back(k.data());
    lens.push_back(k.size());
  }
  for (auto _ : state) {
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(raw.c, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != keys.size()) {
      state.SkipWithError("MGET failed");
      break;
    }
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < r->elements; ++i) bytes += r->element[i]->len;
    benchmark::DoNotOptimize(bytes);
    freeReplyObject(r);
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_RawHiredisMget100)->UseRealTime();

// Aligned: get_many_aligned (a slot per key) instead of get_many (a map).
template <bool kAligned>
void cache_get_many100(benchmark::State& state) {
  auto store = std::make_shared<Store>(options());
  larder::Cache<std::string, std::string> cache(
      store, larder::CacheOptions<std::string, std::string>{.ttl = std::chrono::minutes(1)});
  const auto keys = keys100();
  for (const auto& k : keys) (void)cache.put(k, kValue);
  larder_bench::run_get_many<kAligned>(state, cache, keys);
}
void BM_CacheGetMany100(benchmark::State& state) { cache_get_many100<false>(state); }
BENCHMARK(BM_CacheGetMany100)->UseRealTime();
void BM_CacheGetManyAligned100(benchmark::State& state) { cache_get_many100<true>(state); }
BENCHMARK(BM_CacheGetManyAligned100)->UseRealTime();

void BM_StorePutMany(benchmark::State& state) {
  Store store(options());
  std::vector<std::pair<std::string, larder::Entry<std::string>>> items;
  for (int i = 0; i < state.range(0); ++i) items.emplace_back("pm" + std::to_string(i), entry());
  for (auto _ : state) {
    if (!store.put_many(items).ok()) state.SkipWithError("put_many failed");
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_StorePutMany)->Arg(16)->Arg(1000)->UseRealTime();

// ---- Redis Cluster ----

std::vector<std::string> g_cluster;

larder::RedisOptions cluster_options() {
  larder::RedisOptions o;
  o.cluster_nodes = g_cluster;
  o.key_prefix = kPrefix;
  o.command_timeout = std::chrono::milliseconds(1000);
  return o;
}

void BM_ClusterGetMany100(benchmark::State& state) {
  if (g_cluster.empty()) return state.SkipWithError("LARDER_BENCH_REDIS_CLUSTER unset");
  Store store(cluster_options());
  const auto keys = keys100();
  for (const auto& k : keys) (void)store.put(k, entry());
  for (auto _ : state) {
    auto got = store.get_many(keys);
    if (!got.ok()) state.SkipWithError("get_many failed");
    benchmark::DoNotOptimize(got);
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_ClusterGetMany100)->UseRealTime();

void BM_ClusterGet(benchmark::State& state) {
  if (g_cluster.empty()) return state.SkipWithError("LARDER_BENCH_REDIS_CLUSTER unset");
  Store store(cluster_options());
  if (!store.put("get", entry()).ok()) state.SkipWithError("put failed");
  for (auto _ : state) {
    auto got = store.get("get");
    if (!got.ok() || !got->has_value()) state.SkipWithError("get failed");
    benchmark::DoNotOptimize(got);
  }
}
BENCHMARK(BM_ClusterGet)->UseRealTime();

// BM_RawHiredisGetOwner: GET of the same key as BM_ClusterGet, on a blocking
// hiredis connection to the key's master (found by following one MOVED).
void BM_RawHiredisGetOwner(benchmark::State& state) {
  if (g_cluster.empty()) return state.SkipWithError("LARDER_BENCH_REDIS_CLUSTER unset");
  const std::string& seed = g_cluster.front();
  const std::size_t colon = seed.rfind(':');
  std::string host = seed.substr(0, colon);
  int port = std::atoi(seed.c_str() + colon + 1);
  const std::string key = kPrefix + "get";
  for (int hop = 0; hop < 2; ++hop) {
    redisContext* c = redisConnect(host.c_str(), port);
    if (c == nullptr || c->err) return state.SkipWithError("connect failed");
    auto* r = static_cast<redisReply*>(redisCommand(c, "GET %b", key.data(), key.size()));
    const bool moved =
        r != nullptr && r->type == REDIS_REPLY_ERROR && std::string(r->str).rfind("MOVED", 0) == 0;
    if (moved) {
      const std::string where = std::string(r->str).substr(std::string(r->str).rfind(' ') + 1);
      host = where.substr(0, where.rfind(':'));
      port = std::atoi(where.c_str() + where.rfind(':') + 1);
    }
    if (r != nullptr) freeReplyObject(r);
    redisFree(c);
    if (!moved) break;
  }
  redisContext* c = redisConnect(host.c_str(), port);
  if (c == nullptr || c->err) return state.SkipWithError("connect failed");
  const char* argv[] = {"GET", key.data()};
  const size_t lens[] = {3, key.size()};
  for (auto _ : state) {
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, 2, argv, lens));
    if (r == nullptr || r->type != REDIS_REPLY_STRING)
      state.SkipWithError("GET failed (run BM_ClusterGet first)");
    if (r != nullptr) freeReplyObject(r);
  }
  redisFree(c);
}
BENCHMARK(BM_RawHiredisGetOwner)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  g_host = std::getenv("LARDER_BENCH_REDIS_HOST");
  const char* port = std::getenv("LARDER_BENCH_REDIS_PORT");
  if (g_host == nullptr || port == nullptr || *g_host == '\0' || std::atoi(port) <= 0) {
    std::printf("redis_bench: skipped (set LARDER_BENCH_REDIS_HOST and LARDER_BENCH_REDIS_PORT)\n");
    return 0;
  }
  g_port = std::atoi(port);
  if (const char* cl = std::getenv("LARDER_BENCH_REDIS_CLUSTER"); cl != nullptr) {
    std::string all = cl;
    for (std::size_t start = 0; start < all.size();) {
      std::size_t comma = all.find(',', start);
      if (comma == std::string::npos) comma = all.size();
      if (comma > start) g_cluster.push_back(all.substr(start, comma - start));
      start = comma + 1;
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  {
    Store store(options());  // leave nothing behind
    (void)store.clear();
  }
  if (!g_cluster.empty()) {
    Store store(cluster_options());
    (void)store.clear();
  }
  return 0;
}
