// SPDX-License-Identifier: Apache-2.0
//
// Tests for internal::WriteBack, the write-back engine. Time is a
// ManualClock driven with poll() (see "Time" in write_back.h): no sleeps.
#include "larder/internal/write_back.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <latch>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace larder::internal {
namespace {

using std::chrono::milliseconds;
using Wb = WriteBack<std::string, int>;

// A Writer that records every call, can fail, and can be held at a gate.
// Also checks that one key is never written by two calls at once.
class Recorder {
 public:
  static constexpr int kErased = -1;

  Writer<std::string, int> writer() {
    return {.write = [this](std::span<const std::pair<std::string, int>> b) { return on_write(b); },
            .erase = [this](std::span<const std::string> b) { return on_erase(b); }};
  }

  absl::Status on_write(std::span<const std::pair<std::string, int>> b) {
    std::unique_lock l(mu_);
    for (const auto& [k, v] : b) {
      if (busy_[k]++ != 0) ADD_FAILURE() << "key " << k << " written twice at once";
    }
    ++inside_;
    cv_.notify_all();
    cv_.wait(l, [&] { return !gated_; });
    --inside_;
    for (const auto& [k, v] : b) --busy_[k];
    ++calls_;
    const bool fail = fail_all_ || fail_next_ > 0 || (!fail_key_.empty() && contains(b, fail_key_));
    if (fail_next_ > 0) --fail_next_;
    if (fail) {
      ++failed_calls_;
      cv_.notify_all();
      return absl::UnavailableError("system of record down");
    }
    batches_.push_back(b.size());
    for (const auto& [k, v] : b) seen_[k].push_back(v);
    cv_.notify_all();
    return absl::OkStatus();
  }

  absl::Status on_erase(std::span<const std::string> b) {
    std::lock_guard l(mu_);
    ++calls_;
    if (fail_all_) return absl::UnavailableError("system of record down");
    for (const auto& k : b) seen_[k].push_back(kErased);
    return absl::OkStatus();
  }

  static bool contains(std::span<const std::pair<std::string, int>> b, const std::string& k) {
    for (const auto& p : b)
      if (p.first == k) return true;
    return false;
  }

  std::map<std::string, std::vector<int>> seen() {
    std::lock_guard l(mu_);
    return seen_;
  }
  std::vector<std::size_t> batches() {
    std::lock_guard l(mu_);
    return batches_;
  }
  int calls() {
    std::lock_guard l(mu_);
    return calls_;
  }
  int failed_calls() {
    std::lock_guard l(mu_);
    return failed_calls_;
  }
  int latest(const std::string& k) {
    std::lock_guard l(mu_);
    auto it = seen_.find(k);
    return it == seen_.end() || it->second.empty() ? -2 : it->second.back();
  }
  void set_fail_all(bool f) {
    std::lock_guard l(mu_);
    fail_all_ = f;
  }
  void set_fail_next(int n) {
    std::lock_guard l(mu_);
    fail_next_ = n;
  }
  void set_fail_key(std::string k) {
    std::lock_guard l(mu_);
    fail_key_ = std::move(k);
  }
  void close_gate() {
    std::lock_guard l(mu_);
    gated_ = true;
  }
  void open_gate() {
    std::lock_guard l(mu_);
    gated_ = false;
    cv_.notify_all();
  }
  void wait_inside() {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return inside_ > 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::vector<int>> seen_;
  std::map<std::string, int> busy_;
  std::vector<std::size_t> batches_;
  int calls_ = 0, failed_calls_ = 0, fail_next_ = 0, inside_ = 0;
  bool fail_all_ = false, gated_ = false;
  std::string fail_key_;
};

Wb::Options manual(std::shared_ptr<ManualClock> clock) {
  return {.delay = milliseconds(100),
          .retry_base = milliseconds(100),
          .retry_max = milliseconds(1000),
          .retry_jitter = 0.0,
          .clock = std::move(clock),
          .shutdown_flush_attempts = 1};
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "larder_wb_XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& n) const { return path_ + "/" + n; }

 private:
  std::string path_;
};

TEST(WriteBackTest, CoalescesRepeatedPutsAndKeepsPerKeyOrder) {
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  Wb wb(rec.writer(), manual(clock));
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 100; ++i) {
      const int n = round * 100 + i;
      ASSERT_TRUE(wb.put("k" + std::to_string(n % 10), n).ok());
    }
    clock->advance(milliseconds(100));
    wb.poll();
  }
  auto seen = rec.seen();
  ASSERT_EQ(seen.size(), 10u);
  int total = 0;
  for (int k = 0; k < 10; ++k) {
    const std::vector<int>& vs = seen["k" + std::to_string(k)];
    ASSERT_FALSE(vs.empty());
    EXPECT_EQ(vs.back(), 990 + k);                      // the latest value wins
    EXPECT_TRUE(std::is_sorted(vs.begin(), vs.end()));  // per-key order
    total += static_cast<int>(vs.size());
  }
  EXPECT_LE(total, 100);  // 1000 puts, at most one write per key per round
  WriteBackStats s = wb.stats();
  EXPECT_EQ(s.puts, 1000u);
  EXPECT_EQ(s.writes, static_cast<std::uint64_t>(total));
  EXPECT_EQ(s.coalesced, 1000u - static_cast<std::uint64_t>(total));
  EXPECT_EQ(s.dirty, 0u);
}

TEST(WriteBackTest, WritesNoEarlierAndNoLaterThanDelay) {
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  Wb wb(rec.writer(), manual(clock));
  ASSERT_TRUE(wb.put("a", 1).ok());
  clock->advance(milliseconds(99));
  wb.poll();
  EXPECT_EQ(rec.calls(), 0);
  EXPECT_EQ(wb.dirty(), 1u);
  clock->advance(milliseconds(1));
  wb.poll();
  EXPECT_EQ(rec.calls(), 1);
  EXPECT_EQ(rec.latest("a"), 1);
  EXPECT_EQ(wb.dirty(), 0u);
}

TEST(WriteBackTest, BatchesAreAtMostMaxBatch) {
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  auto o = manual(clock);
  o.max_batch = 4;
  Wb wb(rec.writer(), o);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(wb.put("k" + std::to_string(i), i).ok());
  clock->advance(milliseconds(100));
  wb.poll();
  EXPECT_EQ(rec.batches(), (std::vector<std::size_t>{4, 4, 2}));
  EXPECT_EQ(wb.stats().flushes, 3u);
}

TEST(WriteBackTest, FailuresBackOffAreReportedThenRecover) {
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  std::mutex emu;
  std::vector<std::pair<std::vector<std::string>, absl::StatusCode>> errors;
  auto o = manual(clock);
  o.on_error = [&](std::span<const std::string> keys, const absl::Status& s) {
    std::lock_guard l(emu);
    errors.emplace_back(std::vector<std::string>(keys.begin(), keys.end()), s.code());
  };
  Wb wb(rec.writer(), o);
  rec.set_fail_next(3);
  ASSERT_TRUE(wb.put("a", 1).ok());
  clock->advance(milliseconds(100));
  wb.poll();  // attempt 1 fails; retry in 100 ms
  EXPECT_EQ(rec.calls(), 1);
  clock->advance(milliseconds(99));
  wb.poll();
  EXPECT_EQ(rec.calls(), 1);  // not before the backoff
  clock->advance(milliseconds(1));
  wb.poll();  // attempt 2 fails; retry in 200 ms
  EXPECT_EQ(rec.calls(), 2);
  clock->advance(milliseconds(199));
  wb.poll();
  EXPECT_EQ(rec.calls(), 2);
  ASSERT_TRUE(wb.put("a", 2).ok());  // still coalesces while failing
  EXPECT_EQ(wb.pending("a"), std::optional<std::optional<int>>(2));
  clock->advance(milliseconds(1));
  wb.poll();  // attempt 3 fails; retry in 400 ms
  clock->advance(milliseconds(400));
  wb.poll();  // attempt 4 succeeds
  EXPECT_EQ(rec.calls(), 4);
  EXPECT_EQ(rec.seen()["a"], std::vector<int>{2});
  WriteBackStats s = wb.stats();
  EXPECT_EQ(s.write_failures, 3u);
  EXPECT_EQ(s.writes, 1u);
  EXPECT_EQ(s.dirty, 0u);
  std::lock_guard l(emu);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].first, std::vector<std::string>{"a"});
  EXPECT_EQ(errors[0].second, absl::StatusCode::kUnavailable);
}

TEST(WriteBackTest, BackoffIsCappedAndKeyIsNeverDropped) {
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  Wb wb(rec.writer(), manual(clock));
  rec.set_fail_all(true);
  ASSERT_TRUE(wb.put("a", 1).ok());
  clock->advance(milliseconds(100));
  for (int i = 0; i < 20; ++i) {
    wb.poll();
    clock->advance(milliseconds(1000));  // retry_max
  }
  wb.poll();
  EXPECT_EQ(rec.failed_calls(), 21);  // one attempt per capped backoff
  EXPECT_EQ(wb.dirty(), 1u);
  EXPECT_FALSE(wb.flush().ok());
  rec.set_fail_all(false);
  EXPECT_TRUE(wb.flush().ok());
  EXPECT_EQ(rec.latest("a"), 1);
}

TEST(WriteBackTest, BackpressureRejectsWhenFullAndWriterStuck) {
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  auto o = manual(clock);
  o.max_dirty = 4;
  o.backpressure_wait = milliseconds(0);
  Wb wb(rec.writer(), o);
  rec.set_fail_all(true);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(wb.put("k" + std::to_string(i), i).ok());
  absl::Status s = wb.put("k4", 4);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_TRUE(wb.put("k0", 10).ok());  // an already-dirty key coalesces: no new room needed
  EXPECT_EQ(wb.stats().rejected, 1u);
  rec.set_fail_all(false);
  ASSERT_TRUE(wb.flush().ok());
  EXPECT_TRUE(wb.put("k4", 4).ok());
  EXPECT_EQ(rec.latest("k0"), 10);
}

TEST(WriteBackTest, BackpressureWaitsForTheFlusherWhichWaivesTheDelay) {
  auto clock = std::make_shared<ManualClock>();  // never advanced
  Recorder rec;
  auto o = manual(clock);
  o.max_dirty = 2;
  o.backpressure_wait = milliseconds(60'000);
  Wb wb(rec.writer(), o);
  ASSERT_TRUE(wb.put("a", 1).ok());
  ASSERT_TRUE(wb.put("b", 2).ok());
  EXPECT_TRUE(wb.put("c", 3).ok());  // waits until a and b are written
  EXPECT_EQ(rec.latest("a"), 1);
  EXPECT_EQ(rec.latest("b"), 2);
  EXPECT_EQ(wb.stats().rejected, 0u);
}

TEST(WriteBackTest, FlushWritesEverythingAndReportsErrors) {
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  Wb wb(rec.writer(), manual(clock));
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(wb.put("k" + std::to_string(i), i).ok());
  ASSERT_TRUE(wb.flush().ok());  // no clock advance: flush waives the delay
  EXPECT_EQ(rec.seen().size(), 50u);
  EXPECT_EQ(wb.dirty(), 0u);
  rec.set_fail_all(true);
  ASSERT_TRUE(wb.put("x", 1).ok());
  absl::Status s = wb.flush();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(wb.pending("x"), std::optional<std::optional<int>>(1));
  rec.set_fail_all(false);
  EXPECT_TRUE(wb.flush().ok());  // flush retries at once, ignoring the backoff
  EXPECT_TRUE(wb.flush().ok());  // nothing dirty
}

TEST(WriteBackTest, PendingReadsYourWritesAndErases) {
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  Wb wb(rec.writer(), manual(clock));
  EXPECT_EQ(wb.pending("a"), std::nullopt);
  ASSERT_TRUE(wb.put("a", 1).ok());
  EXPECT_EQ(wb.pending("a"), std::optional<std::optional<int>>(1));
  ASSERT_TRUE(wb.erase("a").ok());
  auto p = wb.pending("a");
  ASSERT_TRUE(p.has_value());
  EXPECT_FALSE(p->has_value());  // a pending erase
  ASSERT_TRUE(wb.flush().ok());
  EXPECT_EQ(wb.pending("a"), std::nullopt);
  EXPECT_EQ(rec.seen()["a"], std::vector<int>{Recorder::kErased});  // the put was coalesced away
}

TEST(WriteBackTest, EraseIsOrderedWithPuts) {
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  Wb wb(rec.writer(), manual(clock));
  ASSERT_TRUE(wb.put("a", 1).ok());
  ASSERT_TRUE(wb.flush().ok());
  ASSERT_TRUE(wb.erase("a").ok());
  ASSERT_TRUE(wb.flush().ok());
  ASSERT_TRUE(wb.put("a", 3).ok());
  ASSERT_TRUE(wb.flush().ok());
  EXPECT_EQ(rec.seen()["a"], (std::vector<int>{1, Recorder::kErased, 3}));
  EXPECT_EQ(wb.stats().erases, 1u);
}

TEST(WriteBackTest, EraseWithoutWriterEraseDropsThePendingPut) {
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  Writer<std::string, int> w = rec.writer();
  w.erase = nullptr;
  Wb wb(w, manual(clock));
  ASSERT_TRUE(wb.put("a", 1).ok());
  ASSERT_TRUE(wb.erase("a").ok());
  ASSERT_TRUE(wb.flush().ok());
  EXPECT_EQ(rec.calls(), 0);
  EXPECT_EQ(wb.dirty(), 0u);
}

// A key being written when a new put arrives stays dirty with the new value,
// and the two writes reach the Writer one after the other, in order.
TEST(WriteBackTest, PutDuringWriteStaysDirty) {
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  Wb wb(rec.writer(), manual(clock));
  ASSERT_TRUE(wb.put("a", 1).ok());
  rec.close_gate();
  absl::Status first;
  std::thread flusher_client([&] { first = wb.flush(); });
  rec.wait_inside();                 // a=1 is in the Writer
  ASSERT_TRUE(wb.put("a", 2).ok());  // arrives while a=1 is being written
  EXPECT_EQ(wb.pending("a"), std::optional<std::optional<int>>(2));
  rec.open_gate();
  flusher_client.join();
  EXPECT_TRUE(first.ok());    // everything acknowledged before it was written
  EXPECT_EQ(wb.dirty(), 1u);  // a=2 still dirty
  EXPECT_EQ(wb.stats().coalesced, 0u);
  ASSERT_TRUE(wb.flush().ok());
  EXPECT_EQ(rec.seen()["a"], (std::vector<int>{1, 2}));
}

TEST(WriteBackTest, FlushUnderConcurrentPuts) {
  Recorder rec;
  Wb wb(rec.writer(), {.delay = milliseconds(5), .max_batch = 16});  // system clock
  constexpr int kThreads = 2, kPuts = 1500, kKeys = 20;
  std::atomic<int> acked[kThreads];
  for (auto& a : acked) a = -1;
  std::atomic<bool> done{false};
  std::latch three_flushes(3);  // putters pause halfway until main has flushed 3 times
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kPuts; ++i) {
        if (i == kPuts / 2) three_flushes.wait();
        ASSERT_TRUE(wb.put("t" + std::to_string(t) + "-" + std::to_string(i % kKeys), i).ok());
        acked[t].store(i, std::memory_order_release);
      }
    });
  }
  int checks = 0;
  while (!done) {
    done = true;
    int snap[kThreads];
    for (int t = 0; t < kThreads; ++t) {
      snap[t] = acked[t].load(std::memory_order_acquire);
      if (snap[t] < kPuts - 1) done = false;
    }
    ASSERT_TRUE(wb.flush().ok());
    if (++checks <= 3) three_flushes.count_down();
    for (int t = 0; t < kThreads; ++t) {
      for (int j = 0; j < kKeys && j <= snap[t]; ++j) {
        const int want = snap[t] - ((snap[t] - j) % kKeys);  // last acked i with i % kKeys == j
        EXPECT_GE(rec.latest("t" + std::to_string(t) + "-" + std::to_string(j)), want);
      }
    }
  }
  for (auto& t : ts) t.join();
  EXPECT_GT(checks, 3);
  EXPECT_LT(wb.stats().writes, static_cast<std::uint64_t>(kThreads * kPuts));
}

TEST(WriteBackTest, DestructorDrains) {
  Recorder rec;
  {
    auto clock = std::make_shared<ManualClock>();
    Wb wb(rec.writer(), manual(clock));
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(wb.put("k" + std::to_string(i % 20), i).ok());
  }
  auto seen = rec.seen();
  ASSERT_EQ(seen.size(), 20u);
  for (int k = 0; k < 20; ++k)
    EXPECT_EQ(seen["k" + std::to_string(k)].back(), k < 10 ? 40 + k : 20 + k);
}

TEST(WriteBackTest, DestructorReportsWhatItCouldNotWrite) {
  Recorder rec;
  rec.set_fail_all(true);
  std::vector<std::string> aborted;
  {
    auto clock = std::make_shared<ManualClock>();
    auto o = manual(clock);
    o.retry_base = milliseconds(1);
    o.shutdown_flush_attempts = 2;
    o.on_error = [&](std::span<const std::string> keys, const absl::Status& s) {
      if (s.code() == absl::StatusCode::kAborted) aborted.assign(keys.begin(), keys.end());
    };
    Wb wb(rec.writer(), o);
    ASSERT_TRUE(wb.put("a", 1).ok());
  }
  EXPECT_EQ(aborted, std::vector<std::string>{"a"});
  EXPECT_EQ(rec.failed_calls(), 2);
}

// Concurrent put/erase/flush on disjoint key sets with a flaky Writer; at the
// end the system of record holds each key's last operation. Run under TSan.
TEST(WriteBackTest, ConcurrentPutEraseFlushStress) {
  Recorder rec;
  std::atomic<int> n{0};
  Writer<std::string, int> w = rec.writer();
  auto inner = w.write;
  w.write = [&, inner](std::span<const std::pair<std::string, int>> b) {
    if (n.fetch_add(1) % 7 == 3) return absl::UnavailableError("flaky");
    return inner(b);
  };
  Wb wb(w, {.delay = milliseconds(1),
            .max_batch = 8,
            .max_dirty = 64,
            .backpressure_wait = milliseconds(10'000),
            .retry_base = milliseconds(1),
            .retry_max = milliseconds(4)});
  constexpr int kThreads = 3, kOps = 1500, kKeys = 10;
  std::vector<std::map<std::string, int>> last(kThreads);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int i = 0; i < kOps; ++i) {
        const std::string k = "t" + std::to_string(t) + "-" + std::to_string(rng() % kKeys);
        const unsigned op = rng() % 20;
        if (op == 0) {
          (void)wb.flush();  // may report the flaky Writer's error
        } else if (op < 4) {
          ASSERT_TRUE(wb.erase(k).ok());
          last[static_cast<std::size_t>(t)][k] = Recorder::kErased;
        } else {
          ASSERT_TRUE(wb.put(k, i).ok());
          last[static_cast<std::size_t>(t)][k] = i;
        }
        if (i % 100 == 0) (void)wb.pending(k);
      }
    });
  }
  for (auto& t : ts) t.join();
  absl::Status s;
  for (int i = 0; i < 20; ++i) {
    s = wb.flush();
    if (s.ok()) break;
  }
  ASSERT_TRUE(s.ok()) << s;
  for (const auto& m : last) {
    for (const auto& [k, v] : m) EXPECT_EQ(rec.latest(k), v) << k;
  }
  EXPECT_EQ(wb.dirty(), 0u);
}

TEST(WriteBackTest, ReplaysTheJournalThroughTheWriter) {
  TempDir dir;
  const std::string path = dir.file("wb");
  auto clock = std::make_shared<ManualClock>();
  {
    Recorder down;
    down.set_fail_all(true);
    auto o = manual(clock);
    o.journal_path = path;
    Wb wb(down.writer(), o);
    for (int i = 0; i < 30; ++i) ASSERT_TRUE(wb.put("k" + std::to_string(i % 10), i).ok());
    ASSERT_TRUE(wb.erase("k3").ok());
    EXPECT_GE(wb.stats().journal.appends, 31u);
  }  // the destructor gives up: the keys stay in the journal
  EXPECT_FALSE(Journal::segment_files(path).empty());
  Recorder rec;
  {
    auto o = manual(clock);
    o.journal_path = path;
    Wb wb(rec.writer(), o);
    WriteBackStats s = wb.stats();
    // Only each key's newest record (k0..k9 from puts 20..29, then the erase
    // of k3) replays: the checkpoint says the 20 older ones were superseded.
    EXPECT_EQ(s.replayed, 11u);
    EXPECT_EQ(s.replay_acknowledged, 20u);
    EXPECT_EQ(s.replay_torn + s.replay_corrupt, 0u);
    // Replayed keys are due at once: k5 is either still pending or written.
    const auto p = wb.pending("k5");
    EXPECT_TRUE(p == std::optional<std::optional<int>>(25) || rec.latest("k5") == 25);
    ASSERT_TRUE(wb.flush().ok());
  }
  for (int k = 0; k < 10; ++k) {
    EXPECT_EQ(rec.seen()["k" + std::to_string(k)],
              std::vector<int>{k == 3 ? Recorder::kErased : 20 + k});
  }
  EXPECT_TRUE(Journal::segment_files(path).empty());  // clean shutdown removes the files
}

// One key that always fails pins old journal segments; the flusher relogs it
// so the journal stays bounded while other keys flow.
TEST(WriteBackTest, JournalStaysBoundedWithAStuckKey) {
  TempDir dir;
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  rec.set_fail_key("stuck");
  auto o = manual(clock);
  o.journal_path = dir.file("wb");
  o.fsync = FsyncPolicy::kNever;
  o.journal_segment_bytes = 2048;
  o.max_batch = 1;  // so the stuck key fails alone
  Wb wb(rec.writer(), o);
  ASSERT_TRUE(wb.put("stuck", 0).ok());
  std::uint64_t max_segments = 0;
  for (int round = 0; round < 60; ++round) {
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(wb.put("k" + std::to_string(i), round).ok());
    clock->advance(milliseconds(1000));
    wb.poll();
    max_segments = std::max(max_segments, wb.stats().journal.segments);
  }
  WriteBackStats s = wb.stats();
  EXPECT_GT(s.journal.deleted_segments, 10u);
  EXPECT_GT(s.relogged, 0u);
  EXPECT_LE(max_segments, 4u);
  EXPECT_EQ(wb.pending("stuck"), std::optional<std::optional<int>>(0));
  rec.set_fail_key("");
}

struct NoCodec {
  std::string s;
};

TEST(WriteBackTest, TypesWithoutCodecWorkWithoutJournal) {
  static_assert(!HasCodec<NoCodec>);
  static_assert(HasCodec<std::string> && HasCodec<int>);
  std::vector<std::string> got;
  Writer<int, NoCodec> w{.write =
                             [&](std::span<const std::pair<int, NoCodec>> b) {
                               for (const auto& [k, v] : b) got.push_back(v.s);
                               return absl::OkStatus();
                             },
                         .erase = nullptr};
  {
    WriteBack<int, NoCodec> wb(w, {});
    ASSERT_TRUE(wb.put(1, NoCodec{"x"}).ok());
  }
  EXPECT_EQ(got, std::vector<std::string>{"x"});
  EXPECT_THROW((WriteBack<int, NoCodec>(w, {.journal_path = "/tmp/x"})), std::invalid_argument);
}

TEST(WriteBackTest, BadOptionsThrow) {
  Recorder rec;
  EXPECT_THROW(Wb(Writer<std::string, int>{}, {}), std::invalid_argument);
  EXPECT_THROW(Wb(rec.writer(), {.max_batch = 0}), std::invalid_argument);
  EXPECT_THROW(Wb(rec.writer(), {.max_dirty = 0}), std::invalid_argument);
  EXPECT_THROW(Wb(rec.writer(), {.retry_base = milliseconds(0)}), std::invalid_argument);
  EXPECT_THROW(Wb(rec.writer(), {.journal_path = "/no/such/dir/wb"}), std::runtime_error);
  TempDir dir;
  EXPECT_THROW(Wb(rec.writer(), {.journal_path = dir.file("wb"), .journal_segment_bytes = 0}),
               std::invalid_argument);
  Wb::Options neg_age{.journal_path = dir.file("wb")};
  neg_age.journal_segment_age = milliseconds(-1);
  EXPECT_THROW(Wb(rec.writer(), neg_age), std::invalid_argument);
  Wb::Options no_checkpoints{.journal_path = dir.file("wb")};
  no_checkpoints.journal_checkpoint_every = 0;
  EXPECT_THROW(Wb(rec.writer(), no_checkpoints), std::invalid_argument);
}

// ---- what a crash replays (issue 10 D) ----
//
// crash_copy() copies the journal's files while the WriteBack is alive and
// idle: exactly what SIGKILL would leave (write() has returned, so the bytes
// are in the files), without the destructor's flush and cleanup. A new
// WriteBack on the copy then replays it.

std::string crash_copy(const std::string& path, const TempDir& into) {
  const std::string copy = into.file("crashed");
  for (const std::string& f : Journal::segment_files(path)) {
    std::filesystem::copy_file(f, copy + f.substr(path.size()));
  }
  return copy;
}

// The reproduction: 30,000 view-counter puts over 500 keys, all
// flushed, then a crash. Before checkpoints all 30,000 records replayed.
TEST(WriteBackReplayTest, FlushedPutsAreNotReplayedAfterACrash) {
  TempDir dir, crash;
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  auto o = manual(clock);
  o.journal_path = dir.file("wb");
  o.fsync = FsyncPolicy::kNever;
  Wb wb(rec.writer(), o);
  for (int i = 0; i < 30'000; ++i) {
    ASSERT_TRUE(wb.put("page" + std::to_string(i % 500), i).ok());
    if (i % 5000 == 4999) {
      ASSERT_TRUE(wb.flush().ok());
    }
  }
  ASSERT_TRUE(wb.flush().ok());
  ASSERT_EQ(wb.dirty(), 0u);
  const std::string copy = crash_copy(o.journal_path, crash);

  Recorder after;
  auto o2 = manual(clock);
  o2.journal_path = copy;
  Wb again(after.writer(), o2);
  const WriteBackStats s = again.stats();
  EXPECT_EQ(s.replayed, 0u);
  EXPECT_EQ(s.replay_acknowledged, 30'000u);
  EXPECT_EQ(again.dirty(), 0u);
  ASSERT_TRUE(again.flush().ok());
  EXPECT_EQ(after.calls(), 0);  // nothing written twice
}

// A hot key put again and again between flushes: each put supersedes the
// key's older record, and the put path checkpoints every
// journal_checkpoint_every records of that, so even with no batch at all a
// crash replays at most that many plus the key's newest record.
TEST(WriteBackReplayTest, SupersededRecordsOfAHotKeyAreNotReplayed) {
  TempDir dir, crash;
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  auto o = manual(clock);
  o.journal_path = dir.file("wb");
  o.fsync = FsyncPolicy::kNever;
  Wb wb(rec.writer(), o);
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(wb.put("hot", i).ok());
  EXPECT_EQ(rec.calls(), 0);  // the clock did not move: no batch ran
  EXPECT_GE(wb.stats().journal.checkpoints, 9u);
  const std::string copy = crash_copy(o.journal_path, crash);

  Recorder after;
  after.set_fail_all(true);  // replayed keys are due at once: keep them pending to look at
  auto o2 = manual(clock);
  o2.journal_path = copy;
  Wb again(after.writer(), o2);
  EXPECT_GE(again.stats().replayed, 1u);
  EXPECT_LE(again.stats().replayed, o.journal_checkpoint_every + 1);
  EXPECT_EQ(again.pending("hot"), std::optional<std::optional<int>>(4999));
  after.set_fail_all(false);
}

// Unflushed puts come back (at-least-once), flushed ones do not: after 300
// flushed puts the Writer goes down, 100 more puts stay dirty, and the crash
// replays those 100 (plus at most the documented window). kEveryWrite (the
// default): checkpoints ride on the log's order, not on fsyncs of their own.
TEST(WriteBackReplayTest, OnlyTheUnflushedComeBack) {
  TempDir dir, crash;
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  auto o = manual(clock);
  o.journal_path = dir.file("wb");
  o.journal_checkpoint_every = 50;  // the window, smaller than the 300 flushed records
  Wb wb(rec.writer(), o);
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(wb.put("k" + std::to_string(i % 30), i).ok());
  ASSERT_TRUE(wb.flush().ok());
  rec.set_fail_all(true);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(wb.put("u" + std::to_string(i), i).ok());
  EXPECT_FALSE(wb.flush().ok());
  ASSERT_EQ(wb.dirty(), 100u);
  const std::string copy = crash_copy(o.journal_path, crash);

  Recorder after;
  after.set_fail_all(true);  // replayed keys are due at once: keep them pending to look at
  auto o2 = manual(clock);
  o2.journal_path = copy;
  Wb again(after.writer(), o2);
  EXPECT_GE(again.stats().replayed, 100u);
  EXPECT_LE(again.stats().replayed, 100u + o.journal_checkpoint_every);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(again.pending("u" + std::to_string(i)), std::optional<std::optional<int>>(i));
  }
  after.set_fail_all(false);
  ASSERT_TRUE(again.flush().ok());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(after.latest("u" + std::to_string(i)), i);
  rec.set_fail_all(false);
}

// Sequence order is not acknowledgement order: the key put FIRST keeps
// failing while 1,000 later puts are written. The checkpoint is the low-water
// mark, so the stuck key still comes back after a crash (a "newest seq
// written" mark would lose it); once it is written, nothing comes back.
TEST(WriteBackReplayTest, OutOfOrderAcknowledgementNeverSkipsAPendingRecord) {
  TempDir dir, crash1, crash2;
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  rec.set_fail_key("stuck");
  auto o = manual(clock);
  o.journal_path = dir.file("wb");
  o.fsync = FsyncPolicy::kNever;
  o.max_batch = 1;  // so the stuck key fails alone
  Wb wb(rec.writer(), o);
  ASSERT_TRUE(wb.put("stuck", 7).ok());
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(wb.put("k" + std::to_string(i % 100), i).ok());
  EXPECT_FALSE(wb.flush().ok());
  ASSERT_EQ(wb.dirty(), 1u);
  const std::string copy1 = crash_copy(o.journal_path, crash1);
  {
    Recorder after;
    after.set_fail_all(true);  // replayed keys are due at once: keep them pending to look at
    auto o2 = manual(clock);
    o2.journal_path = copy1;
    Wb again(after.writer(), o2);
    EXPECT_EQ(again.pending("stuck"), std::optional<std::optional<int>>(7));
    EXPECT_GE(again.stats().replayed, 1u);
    after.set_fail_all(false);
    ASSERT_TRUE(again.flush().ok());
    EXPECT_EQ(after.latest("stuck"), 7);
  }
  rec.set_fail_key("");
  clock->advance(milliseconds(2000));  // past the retry backoff
  wb.poll();
  ASSERT_EQ(wb.dirty(), 0u);
  EXPECT_EQ(rec.latest("stuck"), 7);
  const std::string copy2 = crash_copy(o.journal_path, crash2);
  Recorder after;
  auto o2 = manual(clock);
  o2.journal_path = copy2;
  Wb again(after.writer(), o2);
  EXPECT_EQ(again.stats().replayed, 0u);
  EXPECT_EQ(again.dirty(), 0u);
}

// Segments roll by age (Clock time), and once their records are written the
// flusher deletes them: a quiet journal does not keep its history.
TEST(WriteBackReplayTest, SegmentsRollByAgeAndAreDeletedOnceWritten) {
  TempDir dir;
  auto clock = std::make_shared<ManualClock>();
  Recorder rec;
  auto o = manual(clock);
  o.journal_path = dir.file("wb");
  o.fsync = FsyncPolicy::kNever;
  o.journal_segment_age = milliseconds(1000);
  Wb wb(rec.writer(), o);
  std::uint64_t max_segments = 0;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(wb.put("k" + std::to_string(i), round).ok());
    clock->advance(milliseconds(600));
    wb.poll();
    max_segments =
        std::max<std::uint64_t>(max_segments, Journal::segment_files(o.journal_path).size());
  }
  const WriteBackStats s = wb.stats();
  EXPECT_GE(s.journal.deleted_segments, 5u);
  EXPECT_LE(max_segments, 3u);
}

}  // namespace
}  // namespace larder::internal
