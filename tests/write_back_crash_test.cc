// SPDX-License-Identifier: Apache-2.0
//
// Crash recovery of write-back with a journal, across real processes: the
// WriteBack engine alone (tests/write_back_crash_helper), killed with
// SIGKILL at random moments, recovered by replaying its journal. The protocol
// and its checks are in tests/testing/crash_harness.h; cache_crash_test runs
// the same protocol one layer up, through Cache.
#include <cstdio>
#include <string>

#include "gtest/gtest.h"
#include "larder/internal/write_back.h"
#include "tests/testing/crash_harness.h"

namespace {

TEST(WriteBackCrashTest, EveryAcknowledgedPutSurvivesSigkill) {
  larder::testing::run_crash_rounds("write_back_crash_helper");
}

// Issue 10 D: 30,000 flushed view-counter puts, 20 unflushed ones, SIGKILL:
// the restart replays the 20 (at-least-once) plus at most the documented
// window (journal_checkpoint_every), not the 30,000.
TEST(WriteBackCrashTest, FlushedPutsAreNotReplayedAfterSigkill) {
  const std::uint64_t replayed = larder::testing::run_flushed_then_killed(
      "write_back_crash_helper", 30'000, 20,
      larder::internal::WriteBackConfig<std::string>{}.journal_checkpoint_every);
  std::printf("replayed %llu records after 30000 flushed + 20 unflushed puts\n",
              static_cast<unsigned long long>(replayed));
}

}  // namespace
