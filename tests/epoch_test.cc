// SPDX-License-Identifier: Apache-2.0
//
// Epoch: the grace-period rule, nesting, record reuse, and a reader/writer
// stress test in which writers free what readers may be reading (run under
// TSan and ASan: a use-after-free or a missing happens-before fails it).
#include "larder/internal/epoch.h"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <latch>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/internal/mutex.h"

namespace larder::internal {
namespace {

// Readers announce with a plain store exactly when the kernel offers
// membarrier(PRIVATE_EXPEDITED) (and not under TSan): the asymmetric path
// was once compiled out by testing an enumerator with #if defined().
TEST(EpochTest, UsesMembarrierWhenTheKernelHasIt) {
#if LARDER_EPOCH_MEMBARRIER
  const long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  const bool kernel_has_it = cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0;
  EXPECT_EQ(Epoch::asymmetric(), kernel_has_it);
#else
  EXPECT_FALSE(Epoch::asymmetric());
#endif
}

TEST(EpochTest, AdvancesOnlyWhenEveryActiveReaderCaughtUp) {
  const std::uint64_t e0 = Epoch::current();
  EXPECT_GE(Epoch::try_advance(), e0 + 1);  // nobody in a guard (this thread neither)
  std::latch entered(1), release(1);
  std::thread reader([&] {
    Epoch::Guard g;
    entered.count_down();
    release.wait();
  });
  entered.wait();
  const std::uint64_t e1 = Epoch::current();
  // The reader announced e1 (or e1 - 1 if it read the epoch just before the
  // bump above): at most one more advance is possible while it stays.
  Epoch::try_advance();
  Epoch::try_advance();
  Epoch::try_advance();
  EXPECT_LE(Epoch::current(), e1 + 1);
  EXPECT_FALSE(Epoch::safe(e1));
  release.count_down();
  reader.join();
  Epoch::try_advance();
  Epoch::try_advance();
  EXPECT_TRUE(Epoch::safe(e1));
}

TEST(EpochTest, GuardsNestAndOnlyTheOutermostAnnounces) {
  {
    Epoch::Guard outer;
    EXPECT_TRUE(Epoch::in_guard());
    {
      Epoch::Guard inner;
      EXPECT_TRUE(Epoch::in_guard());
    }
    EXPECT_TRUE(Epoch::in_guard());
    const std::uint64_t e = Epoch::current();
    Epoch::try_advance();  // this thread announced e: one advance allowed
    Epoch::try_advance();
    EXPECT_LE(Epoch::current(), e + 1);
  }
  EXPECT_FALSE(Epoch::in_guard());
}

TEST(EpochTest, ExitedThreadsReturnTheirRecords) {
  // Sequential threads reuse one record: thread indices stay small.
  std::uint32_t max_index = 0;
  for (int i = 0; i < 50; ++i) {
    std::thread t([&] {
      Epoch::Guard g;
      max_index = std::max(max_index, Epoch::thread_index());
    });
    t.join();
  }
  EXPECT_LT(max_index, 16u);
  // An exited thread does not block advancing.
  const std::uint64_t e = Epoch::current();
  Epoch::try_advance();
  EXPECT_GT(Epoch::current(), e);
}

// Writers replace a shared pointer and free old objects after the grace
// period; readers check the object they see is intact.
TEST(EpochTest, StressReadersNeverSeeFreedObjects) {
  struct Obj {
    std::uint64_t a, b;  // b == ~a while alive
  };
  constexpr int kReaders = 3;
  constexpr int kSwaps = 3000;
  std::atomic<Obj*> shared{new Obj{1, ~std::uint64_t{1}}};
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> bad{0}, reads{0};
  std::barrier start(kReaders + 2);
  std::vector<std::thread> ts;
  for (int r = 0; r < kReaders; ++r) {
    ts.emplace_back([&] {
      start.arrive_and_wait();
      while (!done.load(std::memory_order_relaxed)) {
        Epoch::Guard g;
        const Obj* o = shared.load(std::memory_order_acquire);
        if (o->b != ~o->a) bad.fetch_add(1);
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  ts.emplace_back([&] {
    start.arrive_and_wait();
    struct Retired {
      std::uint64_t epoch;
      Obj* o;
    };
    std::vector<Retired> retired;
    for (int i = 2; i < kSwaps || reads.load() < 2000; ++i) {  // overlap with readers
      Obj* fresh = new Obj{static_cast<std::uint64_t>(i), ~static_cast<std::uint64_t>(i)};
      Obj* old = shared.exchange(fresh, std::memory_order_acq_rel);
      retired.push_back({Epoch::current(), old});
      Epoch::try_advance();
      std::size_t k = 0;
      while (k < retired.size() && Epoch::safe(retired[k].epoch)) {
        retired[k].o->a = 0xdead;  // poison before freeing: a reader would see it
        delete retired[k].o;
        ++k;
      }
      retired.erase(retired.begin(), retired.begin() + static_cast<std::ptrdiff_t>(k));
    }
    done.store(true);
    for (const Retired& r : retired) {
      while (!Epoch::safe(r.epoch)) Epoch::try_advance();
      delete r.o;
    }
  });
  start.arrive_and_wait();
  for (auto& t : ts) t.join();
  delete shared.load();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(reads.load(), 0u);
}

}  // namespace
}  // namespace larder::internal
