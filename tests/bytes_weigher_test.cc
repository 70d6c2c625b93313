// SPDX-License-Identifier: Apache-2.0
//
// bytes_weigher: the heap bytes it counts for strings and containers, and a
// LocalStore weighted by it checked against the heap it really uses
// (mallinfo2, glibc; skipped under sanitizers, whose allocators it does not see).
#include "larder/bytes_weigher.h"

#include <malloc.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "gtest/gtest.h"
#include "larder/local_store.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LARDER_TEST_FOREIGN_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LARDER_TEST_FOREIGN_MALLOC 1
#endif
#endif

namespace larder {
namespace {

std::size_t heap_in_use() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

struct Blob {
  std::vector<char> bytes;
  std::size_t heap_bytes() const { return larder::heap_bytes(bytes); }
};
struct Tagged {
  std::string tag;
};
std::size_t larder_heap_bytes(const Tagged& t) { return larder::heap_bytes(t.tag); }

TEST(HeapBytes, StringsAndContainers) {
  EXPECT_EQ(heap_bytes(std::string("short")), 0u);  // inline
  std::string big(100, 'x');
  EXPECT_EQ(heap_bytes(big), internal::malloc_block(big.capacity() + 1));
  EXPECT_GE(heap_bytes(big), 101u);
  std::vector<int> v(10);
  EXPECT_EQ(heap_bytes(v), internal::malloc_block(40));
  std::vector<std::string> vs{std::string(50, 'a'), "b"};
  EXPECT_EQ(heap_bytes(vs), internal::malloc_block(vs.capacity() * sizeof(std::string)) +
                                internal::malloc_block(vs[0].capacity() + 1));
  EXPECT_EQ(heap_bytes(std::uint64_t{7}), 0u);
  EXPECT_EQ(heap_bytes(Blob{std::vector<char>(64)}), internal::malloc_block(64));
  EXPECT_EQ(heap_bytes(Tagged{std::string(40, 't')}), heap_bytes(std::string(40, 't')));
  std::map<int, int> m{{1, 1}, {2, 2}};
  EXPECT_EQ(heap_bytes(m), 2 * internal::malloc_block(32 + sizeof(std::pair<const int, int>)));
  EXPECT_EQ(internal::malloc_block(1), 32u);
  EXPECT_EQ(internal::malloc_block(24), 32u);
  EXPECT_EQ(internal::malloc_block(25), 48u);
  EXPECT_EQ(internal::malloc_block(0), 0u);
}

TEST(BytesWeigher, EntryWeightIsOverheadPlusObjectsPlusHeap) {
  auto w = bytes_weigher<std::string, std::vector<int>>();
  const std::string k(30, 'k');
  const std::vector<int> v(100);
  EXPECT_EQ(w(k, v), kLocalEntryOverheadBytes + sizeof(std::string) + sizeof(std::vector<int>) +
                         heap_bytes(k) + heap_bytes(v));
}

// Measures the heap a store's entries use (the empty store's own allocations
// taken away) against the store's weight().
template <class Fill>
void expect_heap_matches_weight(Fill fill, std::size_t entries) {
#ifdef LARDER_TEST_FOREIGN_MALLOC
  GTEST_SKIP() << "mallinfo2 does not see a sanitizer's allocator";
#endif
  malloc_trim(0);
  const std::size_t before = heap_in_use();
  auto store = std::make_unique<LocalStore<std::string, std::string>>(
      LocalStoreOptions{.max_entries = entries,
                        .max_weight = std::size_t{1} << 32,
                        .shards = 4,
                        .policy = EvictionPolicy::kTinyLfu},
      LocalStoreCallbacks<std::string, std::string>{.weigher =
                                                        bytes_weigher<std::string, std::string>()});
  const std::size_t empty = heap_in_use();
  fill(*store);
  store->cleanup();
  const std::size_t full = heap_in_use();
  ASSERT_EQ(store->size(), entries);
  const double used = static_cast<double>(full - empty);
  const double weight = static_cast<double>(store->weight());
  std::cout << "entries " << entries << ": heap " << used << " B, weight " << weight << " B, ratio "
            << used / weight << " (empty store " << (empty - before) << " B)\n";
  EXPECT_NEAR(used / weight, 1.0, 0.10);
}

TEST(BytesWeigher, MatchesMallinfoForMixedStrings) {
  constexpr std::size_t kN = 20'000;
  expect_heap_matches_weight(
      [](LocalStore<std::string, std::string>& s) {
        std::mt19937_64 rng(3);
        for (std::size_t i = 0; i < kN; ++i) {
          std::string key = "user:" + std::to_string(i);
          if (i % 3 == 0) key += std::string(40, 'p');  // a third of the keys on the heap
          const std::size_t len = rng() % 400;          // values 0-399 bytes
          ASSERT_TRUE(s.put(key, {std::string(len, 'v'), TimePoint::max(), TimePoint::max()}).ok());
        }
      },
      kN);
}

TEST(BytesWeigher, MatchesMallinfoForSmallStrings) {
  constexpr std::size_t kN = 20'000;
  expect_heap_matches_weight(
      [](LocalStore<std::string, std::string>& s) {
        for (std::size_t i = 0; i < kN; ++i) {
          ASSERT_TRUE(
              s.put("k" + std::to_string(i), {"v", TimePoint::max(), TimePoint::max()}).ok());
        }
      },
      kN);
}

// max_weight in bytes bounds the heap: 40 MiB of puts into a 4 MiB store.
TEST(BytesWeigher, MaxWeightBoundsTheHeap) {
#ifdef LARDER_TEST_FOREIGN_MALLOC
  GTEST_SKIP() << "mallinfo2 does not see a sanitizer's allocator";
#endif
  constexpr std::size_t kBudget = 4 << 20;
  malloc_trim(0);
  auto store = std::make_unique<LocalStore<std::string, std::string>>(
      LocalStoreOptions{.max_entries = 8'000,
                        .max_weight = kBudget,
                        .shards = 4,
                        .policy = EvictionPolicy::kTinyLfu},
      LocalStoreCallbacks<std::string, std::string>{.weigher =
                                                        bytes_weigher<std::string, std::string>()});
  const std::size_t empty = heap_in_use();
  std::mt19937_64 rng(5);
  std::size_t offered = 0;
  for (std::size_t i = 0; offered < 10 * kBudget; ++i) {
    std::string v(rng() % 1000, 'v');
    offered += v.size();
    ASSERT_TRUE(
        store->put("key:" + std::to_string(i), {std::move(v), TimePoint::max(), TimePoint::max()})
            .ok());
    ASSERT_LE(store->weight(), kBudget);
  }
  for (int i = 0; i < 3; ++i) store->cleanup();
  const std::size_t used = heap_in_use() - empty;
  std::cout << "budget " << kBudget << " B, heap " << used << " B, weight " << store->weight()
            << " B, entries " << store->size() << "\n";
  EXPECT_LE(static_cast<double>(used), 1.10 * kBudget);
}

}  // namespace
}  // namespace larder

namespace larder {
namespace {

// A value that counts the bytes of its instances alive, in any allocator.
std::atomic<std::size_t> g_live_bytes{0};
struct Tracked {
  explicit Tracked(std::size_t n) : bytes(n) { g_live_bytes += n; }
  Tracked(const Tracked& o) : bytes(o.bytes) { g_live_bytes += bytes; }
  Tracked(Tracked&& o) noexcept : bytes(o.bytes) { g_live_bytes += bytes; }
  Tracked& operator=(const Tracked&) = delete;
  ~Tracked() { g_live_bytes -= bytes; }
  std::size_t heap_bytes() const { return bytes; }
  std::size_t bytes;
};

// Regression: evicted entries wait for an epoch grace period before their
// values are destroyed, and the store attempted that only once 1024 nodes per
// shard were waiting, so with large values the memory held passed max_weight
// many times over (256 KiB values, 8 MiB budget: every value put, 50 MiB,
// was still alive). Now a weighted shard also attempts it whenever 1/32 of
// its budget has been retired, which keeps the values alive within ~10% of
// max_weight.
TEST(BytesWeigher, EvictedValuesDoNotOutliveTheBudget) {
  constexpr std::size_t kBudget = 8 << 20;
  const std::size_t before = g_live_bytes.load();
  {
    LocalStore<std::uint64_t, Tracked> store(
        {.max_entries = 64, .max_weight = kBudget, .shards = 4},
        LocalStoreCallbacks<std::uint64_t, Tracked>{.weigher =
                                                        bytes_weigher<std::uint64_t, Tracked>()});
    std::size_t peak = 0;
    for (std::uint64_t i = 0; i < 200; ++i) {
      ASSERT_TRUE(store.put(i, {Tracked(256 << 10), TimePoint::max(), TimePoint::max()}).ok());
      ASSERT_LE(store.weight(), kBudget);
      peak = std::max(peak, g_live_bytes.load() - before);
    }
    std::cout << "budget " << kBudget << " B, peak live value bytes " << peak << " B\n";
    EXPECT_LE(static_cast<double>(peak), 1.15 * kBudget);
  }
  EXPECT_EQ(g_live_bytes.load(), before);
}

}  // namespace
}  // namespace larder
