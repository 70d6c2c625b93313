// SPDX-License-Identifier: Apache-2.0
//
// Crash recovery of write-back with a journal, across real processes: the
// WriteBehind engine alone (tests/write_back_crash_helper), killed with
// SIGKILL at random moments, recovered by replaying its journal. The protocol
// and its checks are in tests/testing/crash_harness.h; cache_crash_test runs
// the same protocol one layer up, through Cache.
#include "gtest/gtest.h"
#include "tests/testing/crash_harness.h"

namespace {

TEST(WriteBackCrashTest, EveryAcknowledgedPutSurvivesSigkill) {
  larder::testing::run_crash_rounds("write_back_crash_helper");
}

}  // namespace
