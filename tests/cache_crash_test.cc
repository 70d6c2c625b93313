// SPDX-License-Identifier: Apache-2.0
//
// Crash recovery of Cache<K, V> in kWriteBack with a journal, across real
// processes (the same protocol as write_back_crash_test, one layer up:
// through CacheOptions, Cache::put and a LocalStore that evicts dirty keys).
//
// Each round starts tests/cache_crash_helper in "run" mode: two threads doing
// acknowledged Cache::put calls (and reading each key back) into a
// file-backed system of record, printing every acknowledged put. After a
// random number of acknowledgements the test kills it with SIGKILL (in a put,
// a group commit, a Writer call, an eviction, wherever). It then runs the
// helper in "recover" mode, which constructs a new Cache on the same journal
// (replaying it through the Writer) and flushes, and checks the system of
// record: for every key the newest value is at least the newest ACKNOWLEDGED
// one (nothing acknowledged was lost), and no key ever moved backwards.
// Every other round leaves its crashed journal to the next round's "run"
// (replay racing new puts, then crashing again). Rounds cycle through the
// three fsync policies: SIGKILL is a process crash, which all three survive.
#include <cstdio>

#include "gtest/gtest.h"
#include "tests/testing/crash_harness.h"

namespace {

TEST(CacheCrashTest, EveryAcknowledgedPutSurvivesSigkill) {
  larder::testing::run_crash_rounds("cache_crash_helper");
}

// Issue 10 D, through Cache with default options: 30,000 flushed view-counter
// puts, 20 unflushed ones, SIGKILL. CacheStats::journal_replayed counts the
// 20 (at-least-once) plus at most the documented window of 512 records; it
// used to be 30,020.
TEST(CacheCrashTest, FlushedPutsAreNotReplayedAfterSigkill) {
  const std::uint64_t replayed =
      larder::testing::run_flushed_then_killed("cache_crash_helper", 30'000, 20, 512);
  std::printf("journal_replayed %llu after 30000 flushed + 20 unflushed puts\n",
              static_cast<unsigned long long>(replayed));
}

}  // namespace
