// SPDX-License-Identifier: Apache-2.0
//
// ReadBuffer: order and losslessness with one producer, the full/filled
// signals, and a stress test of producers against a lock-holding consumer
// (run under TSan): every drained element was offered, none twice.
#include "larder/internal/read_buffer.h"

#include <atomic>
#include <barrier>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace larder::internal {
namespace {

TEST(ReadBufferTest, OneProducerIsLosslessAndInOrder) {
  ReadBuffer<int> buf;
  std::vector<int> items(100);
  std::vector<int> seen;
  for (int i = 0; i < 100; ++i) {
    items[i] = i;
    const auto r = buf.offer(&items[i]);
    ASSERT_TRUE(r == ReadBuffer<int>::kAdded || r == ReadBuffer<int>::kFilled);
    if (r == ReadBuffer<int>::kFilled) {
      EXPECT_EQ((i + 1) % ReadBuffer<int>::kSize, 0);  // fills exactly every kSize
      buf.drain([&](int* p) { seen.push_back(*p); });
    }
  }
  buf.drain([&](int* p) { seen.push_back(*p); });
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
  EXPECT_EQ(buf.pending(), 0u);
}

// drain_own takes only the calling thread's records; drain takes the rest.
TEST(ReadBufferTest, DrainOwnTakesOnlyTheCallersStripe) {
  ReadBuffer<int> buf;
  int mine[3] = {1, 2, 3};
  int theirs = 7;
  std::thread([&] { ASSERT_EQ(buf.offer(&theirs), ReadBuffer<int>::kAdded); }).join();
  for (int& m : mine) ASSERT_EQ(buf.offer(&m), ReadBuffer<int>::kAdded);
  std::vector<int> seen;
  EXPECT_EQ(buf.drain_own([&](int* p) { seen.push_back(*p); }), 3u);
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(buf.drain_own([&](int* p) { seen.push_back(*p); }), 0u);
  EXPECT_EQ(buf.pending(), 1u);
  EXPECT_EQ(buf.drain([&](int* p) { seen.push_back(*p); }), 1u);
  EXPECT_EQ(seen.back(), 7);
}

TEST(ReadBufferTest, FullStripeDropsUntilDrained) {
  ReadBuffer<int> buf;
  int x = 7;
  for (std::uint32_t i = 0; i + 1 < ReadBuffer<int>::kSize; ++i) {
    EXPECT_EQ(buf.offer_to(0, &x), ReadBuffer<int>::kAdded);
  }
  EXPECT_EQ(buf.offer_to(0, &x), ReadBuffer<int>::kFilled);
  // Full: dropped, and every kRetryAfter-th drop asks for a drain again.
  for (std::uint32_t i = 1; i < ReadBuffer<int>::kRetryAfter; ++i) {
    EXPECT_EQ(buf.offer_to(0, &x), ReadBuffer<int>::kDropped);
  }
  EXPECT_EQ(buf.offer_to(0, &x), ReadBuffer<int>::kFull);
  EXPECT_EQ(buf.offer_to(1, &x), ReadBuffer<int>::kAdded);  // other stripes unaffected
  EXPECT_EQ(buf.offer_owned(2, &x), ReadBuffer<int>::kAdded);
  std::size_t n = buf.drain([](int*) {});
  EXPECT_EQ(n, ReadBuffer<int>::kSize + 2);
  EXPECT_EQ(buf.offer_to(0, &x), ReadBuffer<int>::kAdded);
}

// Contention turns sampling on: after a drain that found two threads'
// records, offer() records one access in kContendedMask + 1; kCalmDrains
// drains that find one busy stripe turn it off again. One thread alone never
// samples (the simulator's exactness depends on it).
TEST(ReadBufferTest, SamplesWhileTwoThreadsRecordAndStopsWhenOneRemains) {
  using Buf = ReadBuffer<int>;
  Buf buf;
  int x = 7;
  auto nop = [](int*) {};
  for (int round = 0; round < 10; ++round) {
    ASSERT_EQ(buf.offer(&x), Buf::kAdded);
    buf.drain(nop);
    ASSERT_EQ(buf.sample_mask(), 0u) << "a single thread must record everything";
  }
  std::thread([&] { ASSERT_EQ(buf.offer(&x), Buf::kAdded); }).join();
  ASSERT_EQ(buf.offer(&x), Buf::kAdded);
  buf.drain(nop);
  ASSERT_EQ(buf.sample_mask(), Buf::kContendedMask);
  std::uint32_t recorded = 0;
  for (std::uint32_t i = 0; i < 8 * (Buf::kContendedMask + 1); ++i) {
    const auto r = buf.offer(&x);
    if (r != Buf::kSkipped) ++recorded;
    if (r == Buf::kFilled) buf.drain_own(nop);  // drain_own does not change the mask
  }
  EXPECT_EQ(recorded, 8u);
  ASSERT_EQ(buf.sample_mask(), Buf::kContendedMask);
  for (std::uint32_t d = 0; d < Buf::kCalmDrains; ++d) {
    EXPECT_EQ(buf.sample_mask(), Buf::kContendedMask) << d;
    while (buf.offer(&x) == Buf::kSkipped) {
    }
    buf.drain(nop);
  }
  EXPECT_EQ(buf.sample_mask(), 0u);
  EXPECT_EQ(buf.offer(&x), Buf::kAdded);
}

TEST(ReadBufferTest, StressProducersAndDrainingConsumer) {
  constexpr int kThreads = 4;
  constexpr int kOps = 4000;
  ReadBuffer<std::uint32_t> buf;
  // Each element is a distinct object; count how often each is drained.
  std::vector<std::uint32_t> objs(kThreads * kOps);
  std::vector<std::atomic<int>> drained(objs.size());
  std::vector<std::atomic<int>> offered(objs.size());
  std::mutex mu;
  std::atomic<std::uint64_t> dropped{0}, bad{0};
  std::barrier start(kThreads);
  auto drain = [&] {
    buf.drain([&](std::uint32_t* p) {
      const auto k = static_cast<std::size_t>(p - objs.data());
      if (*p != k) bad.fetch_add(1);  // the producer's write is visible
      drained[k].fetch_add(1, std::memory_order_relaxed);
    });
  };
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kOps; ++i) {
        const std::size_t k = static_cast<std::size_t>(t) * kOps + i;
        objs[k] = static_cast<std::uint32_t>(k);  // written before the offer, read by the drainer
        // Odd threads use the shared (CAS) stripe, even ones their own.
        const auto r = t % 2 == 1 ? buf.offer_to(ReadBuffer<std::uint32_t>::kStripes - 1, &objs[k])
                                  : buf.offer(&objs[k]);
        const bool want_drain =
            r == ReadBuffer<std::uint32_t>::kFilled || r == ReadBuffer<std::uint32_t>::kFull;
        if (r == ReadBuffer<std::uint32_t>::kAdded || r == ReadBuffer<std::uint32_t>::kFilled) {
          offered[k].store(1, std::memory_order_relaxed);
        } else {
          dropped.fetch_add(1, std::memory_order_relaxed);
        }
        if (want_drain && mu.try_lock()) {
          drain();
          mu.unlock();
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  {
    std::lock_guard<std::mutex> l(mu);
    drain();
  }
  std::uint64_t total = 0;
  for (std::size_t k = 0; k < objs.size(); ++k) {
    ASSERT_EQ(drained[k].load(), offered[k].load()) << k;  // each accepted offer drained once
    total += static_cast<std::uint64_t>(drained[k].load());
  }
  EXPECT_EQ(total + dropped.load(), objs.size());
  EXPECT_EQ(buf.pending(), 0u);
  EXPECT_EQ(bad.load(), 0u);
}

}  // namespace
}  // namespace larder::internal
