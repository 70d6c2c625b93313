// SPDX-License-Identifier: Apache-2.0
//
// Tests for internal::Journal (the write-back journal) and internal::crc32c.
#include "larder/internal/journal.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <barrier>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/clock.h"
#include "larder/internal/crc32c.h"

namespace larder::internal {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "larder_journal_XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

std::vector<JournalRecord> replay_all(const std::string& path, JournalOptions o,
                                      ReplayStats* stats = nullptr,
                                      std::unique_ptr<Journal>* keep = nullptr) {
  std::vector<JournalRecord> out;
  auto j = Journal::open(path, o, [&](JournalRecord&& r) { out.push_back(std::move(r)); });
  EXPECT_TRUE(j.ok()) << j.status();
  if (j.ok()) {
    if (stats != nullptr) *stats = (*j)->replay_stats();
    if (keep != nullptr) *keep = std::move(*j);
  }
  return out;
}

std::unique_ptr<Journal> open_empty(const std::string& path, JournalOptions o = {}) {
  auto j = Journal::open(path, o, [](JournalRecord&&) { ADD_FAILURE() << "unexpected record"; });
  EXPECT_TRUE(j.ok()) << j.status();
  return j.ok() ? std::move(*j) : nullptr;
}

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);            // the standard check value
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  const std::string s = "The quick brown fox jumps over the lazy dog";
  for (std::size_t cut = 0; cut <= s.size(); ++cut) {
    EXPECT_EQ(
        crc32c_extend(crc32c(std::string_view(s).substr(0, cut)), std::string_view(s).substr(cut)),
        crc32c(s));
  }
}

TEST(JournalTest, RoundTripInOrder) {
  TempDir dir;
  const std::string path = dir.file("wb");
  for (FsyncPolicy p :
       {FsyncPolicy::kEveryWrite, FsyncPolicy::kEveryInterval, FsyncPolicy::kNever}) {
    std::error_code ec;
    for (const std::string& f : Journal::segment_files(path)) fs::remove(f, ec);
    JournalOptions o{.fsync = p, .fsync_interval = std::chrono::milliseconds(5)};
    {
      auto j = open_empty(path, o);
      ASSERT_NE(j, nullptr);
      for (int i = 0; i < 100; ++i) {
        auto seq = j->append(JournalRecordType::kPut, "k" + std::to_string(i % 7),
                             std::string(static_cast<std::size_t>(i), 'v'));
        ASSERT_TRUE(seq.ok()) << seq.status();
        EXPECT_EQ(*seq, static_cast<std::uint64_t>(i + 1));
      }
      ASSERT_TRUE(j->append(JournalRecordType::kErase, "k3", "").ok());
      ASSERT_TRUE(j->append(JournalRecordType::kPut, std::string("\0bin\xff", 5), "").ok());
    }
    ReplayStats rs;
    std::vector<JournalRecord> got = replay_all(path, o, &rs);
    ASSERT_EQ(got.size(), 102u);
    for (int i = 0; i < 100; ++i) {
      EXPECT_EQ(got[static_cast<std::size_t>(i)].type, JournalRecordType::kPut);
      EXPECT_EQ(got[static_cast<std::size_t>(i)].seq, static_cast<std::uint64_t>(i + 1));
      EXPECT_EQ(got[static_cast<std::size_t>(i)].key, "k" + std::to_string(i % 7));
      EXPECT_EQ(got[static_cast<std::size_t>(i)].value,
                std::string(static_cast<std::size_t>(i), 'v'));
    }
    EXPECT_EQ(got[100].type, JournalRecordType::kErase);
    EXPECT_EQ(got[100].key, "k3");
    EXPECT_EQ(got[101].key, std::string("\0bin\xff", 5));
    EXPECT_EQ(rs.records, 102u);
    EXPECT_EQ(rs.torn, 0u);
    EXPECT_EQ(rs.corrupt, 0u);
  }
}

TEST(JournalTest, SequenceContinuesAfterReopen) {
  TempDir dir;
  const std::string path = dir.file("wb");
  {
    auto j = open_empty(path);
    ASSERT_TRUE(j->append(JournalRecordType::kPut, "a", "1").ok());
  }
  std::unique_ptr<Journal> j;
  ASSERT_EQ(replay_all(path, {}, nullptr, &j).size(), 1u);
  auto seq = j->append(JournalRecordType::kPut, "b", "2");
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(*seq, 2u);
  j.reset();
  std::vector<JournalRecord> got = replay_all(path, {});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].key, "a");
  EXPECT_EQ(got[1].key, "b");
  EXPECT_EQ(Journal::segment_files(path).size(), 3u);  // each open starts a segment
}

// One Journal per path: a second open (here, or in another process) fails
// with kFailedPrecondition and reads nothing; once the first is gone the path
// opens again, with every record.
TEST(JournalTest, APathHasOneOwnerAtATime) {
  TempDir dir;
  const std::string path = dir.file("wb");
  auto first = open_empty(path);
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->append(JournalRecordType::kPut, "a", "1").ok());
  int replayed = 0;
  auto second = Journal::open(path, {}, [&](JournalRecord&&) { ++replayed; });
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("in use"), std::string_view::npos);
  EXPECT_EQ(replayed, 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto j = Journal::open(path, {}, [](JournalRecord&&) {});
    ::_exit(!j.ok() && j.status().code() == absl::StatusCode::kFailedPrecondition ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "another process opened it";
  first.reset();
  std::unique_ptr<Journal> again;
  EXPECT_EQ(replay_all(path, {}, nullptr, &again).size(), 1u);
}

// Records enqueued by many threads before anyone waits are written by at most
// one write()+fsync per waiting thread: each waiter leads at most once, and a
// leader takes everything buffered.
TEST(JournalTest, GroupCommitSharesOneWrite) {
  TempDir dir;
  const std::string path = dir.file("wb");
  constexpr int kThreads = 4, kPerThread = 50;
  {
    auto j = open_empty(path);
    std::barrier sync(kThreads);
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
      ts.emplace_back([&, t] {
        std::uint64_t last = 0;
        for (int i = 0; i < kPerThread; ++i) {
          last = j->enqueue(JournalRecordType::kPut, "t" + std::to_string(t), std::to_string(i));
        }
        sync.arrive_and_wait();
        EXPECT_TRUE(j->wait_durable(last).ok());
      });
    }
    for (auto& t : ts) t.join();
    JournalStats s = j->stats();
    EXPECT_EQ(s.appends, static_cast<std::uint64_t>(kThreads * kPerThread));
    EXPECT_GE(s.commits, 1u);
    EXPECT_LE(s.commits, static_cast<std::uint64_t>(kThreads));
  }
  std::vector<JournalRecord> got = replay_all(path, {});
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::vector<int> next(kThreads, 0);
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].seq, i + 1);
    const int t = got[i].key[1] - '0';
    EXPECT_EQ(got[i].value,
              std::to_string(next[static_cast<std::size_t>(t)]++));  // per-thread order kept
  }
}

// Concurrent append() callers: every record lands exactly once, in seq order,
// and (informational) far fewer commits than records.
TEST(JournalTest, ConcurrentAppendsAllLand) {
  TempDir dir;
  const std::string path = dir.file("wb");
  constexpr int kThreads = 4, kPerThread = 150;
  JournalStats s;
  {
    auto j = open_empty(path);
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
      ts.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          auto seq = j->append(JournalRecordType::kPut, std::to_string(t), std::to_string(i));
          EXPECT_TRUE(seq.ok());
        }
      });
    }
    for (auto& t : ts) t.join();
    s = j->stats();
  }
  EXPECT_LE(s.commits, s.appends);
  std::printf("concurrent appends: %llu records in %llu commits\n",
              static_cast<unsigned long long>(s.appends),
              static_cast<unsigned long long>(s.commits));
  std::vector<JournalRecord> got = replay_all(path, {});
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kThreads * kPerThread));
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].seq, i + 1);
}

// Writes 10 records with a fresh journal and returns the segment holding them.
std::string write_ten(const std::string& path) {
  auto j = open_empty(path);
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(
        j->append(JournalRecordType::kPut, "key" + std::to_string(i), "value" + std::to_string(i))
            .ok());
  }
  return Journal::segment_files(path).back();
}

TEST(JournalTest, TornTailIsCountedAndNeverApplied) {
  TempDir dir;
  const std::string path = dir.file("wb");
  const std::string seg = write_ten(path);
  const auto size = fs::file_size(seg);
  for (std::uintmax_t cut : {1u, 3u, 10u}) {  // inside the value, the body, the header
    fs::resize_file(seg, size - cut);
    ReplayStats rs;
    std::vector<JournalRecord> got = replay_all(path, {}, &rs);
    // Each open started an empty segment; remove it so this segment stays last.
    std::error_code ec;
    for (const std::string& f : Journal::segment_files(path))
      if (f != seg) fs::remove(f, ec);
    ASSERT_EQ(got.size(), 9u) << "cut " << cut;
    EXPECT_EQ(got.back().key, "key8");
    EXPECT_EQ(rs.torn, 1u);
    EXPECT_EQ(rs.corrupt, 0u);
    EXPECT_GT(rs.skipped_bytes, 0u);
  }
}

TEST(JournalTest, TornSegmentIsNotAppendedToAndLaterSegmentsReplay) {
  TempDir dir;
  const std::string path = dir.file("wb");
  const std::string seg = write_ten(path);
  fs::resize_file(seg, fs::file_size(seg) - 2);
  {
    std::unique_ptr<Journal> j;
    ASSERT_EQ(replay_all(path, {}, nullptr, &j).size(), 9u);
    ASSERT_TRUE(j->append(JournalRecordType::kPut, "after", "crash").ok());
  }
  ReplayStats rs;
  std::vector<JournalRecord> got = replay_all(path, {}, &rs);
  ASSERT_EQ(got.size(), 10u);
  EXPECT_EQ(got.back().key, "after");
  EXPECT_EQ(got.back().seq, 10u);  // continues after the last VALID record
  EXPECT_EQ(rs.torn, 1u);
}

TEST(JournalTest, CorruptTailIsCountedAndNeverApplied) {
  TempDir dir;
  const std::string path = dir.file("wb");
  const std::string seg = write_ten(path);
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-1, std::ios::end);  // last byte of the last record's value
    f.put('X');
  }
  ReplayStats rs;
  std::vector<JournalRecord> got = replay_all(path, {}, &rs);
  ASSERT_EQ(got.size(), 9u);
  for (const JournalRecord& r : got) EXPECT_NE(r.key, "key9");
  EXPECT_EQ(rs.corrupt, 1u);
  EXPECT_EQ(rs.torn, 0u);
}

TEST(JournalTest, CorruptMiddleRecordStopsThatSegment) {
  TempDir dir;
  const std::string path = dir.file("wb");
  const std::string seg = write_ten(path);
  {
    // Record i starts at 8 + sum of earlier sizes; every record here is
    // 8 + 13 + 4 + 6 = 31 bytes. Corrupt the length of record 4 (0-based).
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8 + 4 * 31);
    f.put('\x07');
  }
  ReplayStats rs;
  std::vector<JournalRecord> got = replay_all(path, {}, &rs);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got.back().key, "key3");
  EXPECT_EQ(rs.corrupt, 1u);
}

TEST(JournalTest, ZeroFilledTailIsCorruptNotApplied) {
  TempDir dir;
  const std::string path = dir.file("wb");
  const std::string seg = write_ten(path);
  fs::resize_file(seg, fs::file_size(seg) + 4096);  // a filesystem that extended with zeros
  ReplayStats rs;
  ASSERT_EQ(replay_all(path, {}, &rs).size(), 10u);
  EXPECT_EQ(rs.corrupt, 1u);
}

// Releasing as "flushes" complete keeps the files bounded; a pinned record
// makes relog_below() ask for a relog, after which everything old goes.
TEST(JournalTest, CompactionKeepsFilesBounded) {
  TempDir dir;
  const std::string path = dir.file("wb");
  JournalOptions o{.fsync = FsyncPolicy::kNever, .segment_bytes = 4096};
  auto j = open_empty(path, o);
  const std::string value(100, 'v');
  std::uint64_t max_live = 0;
  for (int i = 0; i < 5000; ++i) {
    auto seq = j->append(JournalRecordType::kPut, "k" + std::to_string(i % 50), value);
    ASSERT_TRUE(seq.ok());
    // The owner's flusher lags 20 records (under one segment's worth) behind.
    if (*seq > 20) j->release_below(*seq - 20);
    max_live = std::max(max_live, j->stats().live_bytes);
    EXPECT_EQ(j->relog_below(), 0u);
  }
  JournalStats s = j->stats();
  EXPECT_GT(s.deleted_segments, 100u);
  EXPECT_LE(s.segments, 3u);
  EXPECT_LE(max_live, 3u * 4096 + 4096);
  std::printf("compaction: %llu bytes written, at most %llu live\n",
              static_cast<unsigned long long>(s.bytes), static_cast<unsigned long long>(max_live));

  // Pin: one key's record (the next one) is never flushed.
  auto pinned = j->append(JournalRecordType::kPut, "stuck", value);
  ASSERT_TRUE(pinned.ok());
  std::uint64_t last = *pinned;
  while (j->relog_below() == 0) {
    auto seq = j->append(JournalRecordType::kPut, "flowing", value);
    ASSERT_TRUE(seq.ok());
    last = *seq;
    j->release_below(std::min(*pinned, last));  // the pinned record holds everything back
  }
  EXPECT_GT(j->relog_below(), *pinned);
  // Relog: append a fresh copy of the stuck record; now the old one is not needed.
  auto relogged = j->append(JournalRecordType::kPut, "stuck", value);
  ASSERT_TRUE(relogged.ok());
  j->release_below(*relogged);
  EXPECT_LE(j->sealed_segments(), 1u);
  EXPECT_EQ(j->relog_below(), 0u);
  j.reset();
  std::vector<JournalRecord> got = replay_all(path, o);
  bool saw_stuck = false;
  for (const JournalRecord& r : got) saw_stuck |= (r.key == "stuck");
  EXPECT_TRUE(saw_stuck);
}

TEST(JournalTest, ReleaseEverythingLeavesNothingToReplay) {
  TempDir dir;
  const std::string path = dir.file("wb");
  JournalOptions o{.segment_bytes = 64};
  {
    auto j = open_empty(path, o);
    std::uint64_t last = 0;
    for (int i = 0; i < 20; ++i) last = *j->append(JournalRecordType::kPut, "k", "v");
    j->release_below(last + 1);
  }
  std::vector<JournalRecord> got = replay_all(path, o);
  EXPECT_LE(got.size(), 3u);  // at most the records of the segment still active at the end
  EXPECT_LE(Journal::segment_files(path).size(), 2u);
}

TEST(JournalTest, RetireRemovesAllFiles) {
  TempDir dir;
  const std::string path = dir.file("wb");
  auto j = open_empty(path);
  ASSERT_TRUE(j->append(JournalRecordType::kPut, "k", "v").ok());
  ASSERT_TRUE(j->retire().ok());
  EXPECT_FALSE(j->append(JournalRecordType::kPut, "k", "v").ok());
  j.reset();
  EXPECT_TRUE(Journal::segment_files(path).empty());
}

TEST(JournalTest, OpenRejectsBadOptions) {
  TempDir dir;
  auto noop = [](JournalRecord&&) {};
  EXPECT_EQ(Journal::open("", {}, noop).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Journal::open(dir.file("x"), {.segment_bytes = 0}, noop).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Journal::open(dir.file("x"),
                          {.fsync = FsyncPolicy::kEveryInterval,
                           .fsync_interval = std::chrono::milliseconds(0)},
                          noop)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Journal::open(dir.file("no/such/dir/x"), {}, noop).ok());
}

// ---- checkpoints: a restart replays only what was not acknowledged ----

std::vector<std::uint64_t> seqs(const std::vector<JournalRecord>& rs) {
  std::vector<std::uint64_t> out;
  for (const JournalRecord& r : rs) out.push_back(r.seq);
  return out;
}

std::vector<std::uint64_t> range(std::uint64_t from, std::uint64_t to) {  // [from, to]
  std::vector<std::uint64_t> out;
  for (std::uint64_t s = from; s <= to; ++s) out.push_back(s);
  return out;
}

// Appends n puts; returns the last seq.
std::uint64_t append_n(Journal& j, int n, const std::string& prefix = "k") {
  std::uint64_t last = 0;
  for (int i = 0; i < n; ++i) {
    auto seq =
        j.append(JournalRecordType::kPut, prefix + std::to_string(i), "v" + std::to_string(i));
    EXPECT_TRUE(seq.ok()) << seq.status();
    if (seq.ok()) last = *seq;
  }
  return last;
}

// The Journal object is simply dropped at the end of each block: its files
// stay exactly as a killed process would leave them (write() has returned).
TEST(JournalCheckpointTest, ReplaySkipsWhatACheckpointCovers) {
  TempDir dir;
  const std::string path = dir.file("wb");
  {
    auto j = open_empty(path);
    append_n(*j, 100);
    ASSERT_TRUE(j->enqueue_checkpoint(61));
    ASSERT_TRUE(j->write_buffered().ok());
    EXPECT_EQ(j->stats().checkpoints, 1u);
  }
  ReplayStats rs;
  std::vector<JournalRecord> got = replay_all(path, {}, &rs);
  EXPECT_EQ(seqs(got), range(61, 100));
  EXPECT_EQ(rs.records, 40u);
  EXPECT_EQ(rs.acknowledged, 60u);
  EXPECT_EQ(rs.checkpoint, 61u);
  EXPECT_EQ(rs.torn + rs.corrupt, 0u);
}

// Everything acknowledged: nothing replays, and the reopened journal (which
// starts its new segment with the checkpoint) keeps skipping across restarts.
TEST(JournalCheckpointTest, ACheckpointSurvivesRestartsAndNewAppendsReplay) {
  TempDir dir;
  const std::string path = dir.file("wb");
  {
    auto j = open_empty(path);
    const std::uint64_t last = append_n(*j, 50);
    ASSERT_TRUE(j->enqueue_checkpoint(last + 1));
    ASSERT_TRUE(j->write_buffered().ok());
  }
  for (int restart = 0; restart < 3; ++restart) {
    ReplayStats rs;
    std::unique_ptr<Journal> j;
    EXPECT_TRUE(replay_all(path, {}, &rs, &j).empty()) << "restart " << restart;
    EXPECT_EQ(rs.checkpoint, 51u);
    EXPECT_EQ(j->checkpoint_mark(), 51u);
    // open() deleted the segments the checkpoint covers: only its own is left.
    EXPECT_EQ(Journal::segment_files(path).size(), 1u);
  }
  {
    std::unique_ptr<Journal> j;
    replay_all(path, {}, nullptr, &j);
    auto seq = j->append(JournalRecordType::kPut, "new", "x");
    ASSERT_TRUE(seq.ok());
    EXPECT_EQ(*seq, 51u);  // the sequence continues past the covered records
  }
  std::vector<JournalRecord> got = replay_all(path, {});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, "new");
}

// Sequence order is not acknowledgement order. The owner's checkpoint is the
// LOW-WATER MARK of what is pending: here record 4 is still pending while
// 5..10 were written, so the mark is 4 and 4..10 replay (at-least-once). A
// later, lower mark (a misbehaving owner) never moves the checkpoint back.
TEST(JournalCheckpointTest, OutOfOrderAcknowledgementReplaysFromTheOldestPending) {
  TempDir dir;
  const std::string path = dir.file("wb");
  {
    auto j = open_empty(path);
    append_n(*j, 10);
    ASSERT_TRUE(j->enqueue_checkpoint(2));   // 1 written
    ASSERT_TRUE(j->enqueue_checkpoint(4));   // 2, 3 written; 4 pending; 5..10 written
    EXPECT_FALSE(j->enqueue_checkpoint(3));  // not larger: ignored
    EXPECT_FALSE(j->enqueue_checkpoint(4));
    ASSERT_TRUE(j->write_buffered().ok());
    EXPECT_EQ(j->checkpoint_mark(), 4u);
    EXPECT_EQ(j->stats().checkpoints, 2u);
  }
  std::vector<JournalRecord> got = replay_all(path, {});
  EXPECT_EQ(seqs(got), range(4, 10));
}

// A mark beyond the last seq + 1 cannot acknowledge records that do not exist
// yet: it is clamped, so a record appended afterwards still replays.
TEST(JournalCheckpointTest, AMarkIsClampedToTheRecordsThatExist) {
  TempDir dir;
  const std::string path = dir.file("wb");
  {
    auto j = open_empty(path);
    append_n(*j, 5);
    ASSERT_TRUE(j->enqueue_checkpoint(1000));
    EXPECT_EQ(j->checkpoint_mark(), 6u);
    ASSERT_TRUE(j->append(JournalRecordType::kPut, "later", "x").ok());
  }
  std::vector<JournalRecord> got = replay_all(path, {});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, "later");
}

// A crash while the newest checkpoint was being written: its torn bytes are
// counted and ignored, and the previous checkpoint applies.
TEST(JournalCheckpointTest, TornCheckpointFallsBackToThePreviousOne) {
  TempDir dir;
  const std::string path = dir.file("wb");
  std::string seg;
  {
    auto j = open_empty(path);
    append_n(*j, 10);
    ASSERT_TRUE(j->enqueue_checkpoint(5));
    ASSERT_TRUE(j->write_buffered().ok());
    append_n(*j, 10, "m");
    ASSERT_TRUE(j->enqueue_checkpoint(21));
    ASSERT_TRUE(j->write_buffered().ok());
    seg = Journal::segment_files(path).back();
  }
  // The last checkpoint record is 8 + 13 + 8 = 29 bytes; cut into it.
  for (std::uintmax_t cut : {1u, 12u, 28u}) {
    TempDir copy;
    const std::string p2 = copy.file("wb");
    fs::copy_file(seg, p2 + ".000000000001");
    fs::resize_file(p2 + ".000000000001", fs::file_size(seg) - cut);
    ReplayStats rs;
    std::vector<JournalRecord> got = replay_all(p2, {}, &rs);
    EXPECT_EQ(seqs(got), range(5, 20)) << "cut " << cut;
    EXPECT_EQ(rs.torn, 1u);
    EXPECT_EQ(rs.checkpoint, 5u);
  }
  // Uncut: everything was acknowledged.
  EXPECT_TRUE(replay_all(path, {}).empty());
}

// Segments roll by size; a checkpoint in the newest segment covers records
// in older ones, release_below() deletes those, and replay returns only the
// tail above the mark.
TEST(JournalCheckpointTest, CheckpointRollAndReplay) {
  TempDir dir;
  const std::string path = dir.file("wb");
  JournalOptions o{.fsync = FsyncPolicy::kNever, .segment_bytes = 512};
  std::uint64_t last = 0;
  {
    auto j = open_empty(path, o);
    last = append_n(*j, 300);
    ASSERT_GT(j->sealed_segments(), 5u);
    // Records 1..280 were flushed; 281..300 are pending.
    ASSERT_TRUE(j->enqueue_checkpoint(281));
    ASSERT_TRUE(j->write_buffered().ok());
    ASSERT_TRUE(j->wait_durable(last).ok());
    j->release_below(281);
    EXPECT_LE(Journal::segment_files(path).size(), 3u);
    EXPECT_GT(j->stats().deleted_segments, 5u);
  }
  ReplayStats rs;
  std::vector<JournalRecord> got = replay_all(path, o, &rs);
  EXPECT_EQ(seqs(got), range(281, 300));
  EXPECT_EQ(rs.checkpoint, 281u);
}

// Without any release_below(), open() alone deletes the segments a checkpoint
// covers entirely (a crash between a roll and the owner's deletion).
TEST(JournalCheckpointTest, OpenDeletesSegmentsTheCheckpointCovers) {
  TempDir dir;
  const std::string path = dir.file("wb");
  JournalOptions o{.fsync = FsyncPolicy::kNever, .segment_bytes = 512};
  {
    auto j = open_empty(path, o);
    append_n(*j, 200);
    ASSERT_TRUE(j->enqueue_checkpoint(191));
    ASSERT_TRUE(j->write_buffered().ok());
  }
  const std::size_t before = Journal::segment_files(path).size();
  ASSERT_GT(before, 5u);
  ReplayStats rs;
  std::unique_ptr<Journal> j;
  EXPECT_EQ(seqs(replay_all(path, o, &rs, &j)), range(191, 200));
  EXPECT_EQ(rs.acknowledged, 190u);
  EXPECT_LE(Journal::segment_files(path).size(), 3u);
}

// The active segment rolls by age (Clock time) once it holds a data record,
// so a quiet journal's acknowledged records can be deleted; an idle journal
// with nothing new does not roll.
TEST(JournalCheckpointTest, ActiveSegmentRollsByAge) {
  TempDir dir;
  const std::string path = dir.file("wb");
  auto clock = std::make_shared<ManualClock>();
  JournalOptions o{
      .fsync = FsyncPolicy::kNever, .segment_age = std::chrono::milliseconds(1000), .clock = clock};
  auto j = open_empty(path, o);
  const std::uint64_t first = append_n(*j, 3);
  clock->advance(std::chrono::milliseconds(999));
  ASSERT_TRUE(j->append(JournalRecordType::kPut, "a", "1").ok());
  EXPECT_EQ(j->sealed_segments(), 0u);
  clock->advance(std::chrono::milliseconds(1));
  auto seq = j->append(JournalRecordType::kPut, "b", "2");  // this commit rolls
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(j->sealed_segments(), 1u);
  // Nothing new: an idle journal does not roll, however long.
  clock->advance(std::chrono::hours(1));
  ASSERT_TRUE(j->write_buffered().ok());
  EXPECT_EQ(j->sealed_segments(), 1u);
  // Everything acknowledged: the sealed segment goes.
  ASSERT_TRUE(j->enqueue_checkpoint(*seq + 1));
  ASSERT_TRUE(j->write_buffered().ok());
  j->release_below(*seq + 1);
  EXPECT_EQ(j->sealed_segments(), 0u);
  EXPECT_EQ(Journal::segment_files(path).size(), 1u);
  EXPECT_GT(*seq, first);
}

// Under kEveryWrite a checkpoint is written without an fsync of its own (it
// needs none); a record's wait_durable still fsyncs.
TEST(JournalCheckpointTest, CheckpointsNeedNoFsync) {
  TempDir dir;
  auto j = open_empty(dir.file("wb"));
  const std::uint64_t last = append_n(*j, 3);
  const std::uint64_t syncs = j->stats().syncs;
  ASSERT_TRUE(j->enqueue_checkpoint(last + 1));
  ASSERT_TRUE(j->write_buffered().ok());
  EXPECT_EQ(j->stats().syncs, syncs);
  ASSERT_TRUE(j->append(JournalRecordType::kPut, "x", "y").ok());
  EXPECT_EQ(j->stats().syncs, syncs + 1);
}

// ---- bytes from outside: corrupt input is a counted bad tail, never UB ----

// Writes a segment file "<path>.000000000001" holding the magic and `records`.
void write_segment(const std::string& path, const std::string& records) {
  std::ofstream f(path + ".000000000001", std::ios::binary | std::ios::trunc);
  f << journal_internal::kMagic << records;
}

std::string record(unsigned char type, std::uint64_t seq, std::string_view key,
                   std::string_view value) {
  std::string out;
  journal_internal::encode_raw(out, type, seq, key, value);
  return out;
}

std::string mark_bytes(std::uint64_t mark) {
  std::string v;
  journal_internal::put_u64(v, mark);
  return v;
}

// Hand-made records with valid checksums but impossible fields: each stops
// replay at that record as CORRUPT, keeps the record before it, and the
// journal opens with a sequence that can still grow.
TEST(JournalTest, ImpossibleFieldsAreCorruptNotTrusted) {
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  const std::string good = record(1, 1, "a", "1");
  struct Case {
    const char* what;
    std::string bad;
  };
  std::string huge_len = record(1, 2, "b", "2");
  huge_len[0] = huge_len[1] = huge_len[2] = huge_len[3] = '\xff';  // len 2^32-1 (CRC fails too)
  std::string klen_past_end = record(1, 2, "b", "2");
  klen_past_end[8 + 9] = '\x7f';  // klen far beyond the body; fix the CRC:
  {
    const std::uint32_t len = journal_internal::get_u32(klen_past_end.data());
    const std::uint32_t crc = crc32c_extend(crc32c(std::string_view(klen_past_end).substr(0, 4)),
                                            std::string_view(klen_past_end).substr(8, len));
    std::string c;
    journal_internal::put_u32(c, crc);
    klen_past_end.replace(4, 4, c);
  }
  const Case cases[] = {
      {"length 2^32-1", huge_len},
      {"key length past the record", klen_past_end},
      {"seq UINT64_MAX", record(1, kMax, "b", "2")},
      {"seq 2^62 + 1", record(1, journal_internal::kMaxSeq + 1, "b", "2")},
      {"seq not increasing", record(1, 1, "b", "2")},
      {"unknown type", record(9, 2, "b", "2")},
      {"type 0", record(0, 2, "b", "2")},
      {"checkpoint mark beyond seq + 1", record(3, 1, "", mark_bytes(3))},
      {"checkpoint mark UINT64_MAX", record(3, 1, "", mark_bytes(kMax))},
      {"checkpoint seq UINT64_MAX", record(3, kMax, "", mark_bytes(kMax))},
      {"checkpoint seq going back", record(3, 0, "", mark_bytes(1))},
      {"checkpoint with a key", record(3, 1, "k", mark_bytes(1))},
      {"checkpoint mark of 7 bytes", record(3, 1, "", std::string(7, '\0'))},
      {"checkpoint mark of 9 bytes", record(3, 1, "", std::string(9, '\0'))},
  };
  for (const Case& c : cases) {
    TempDir dir;
    const std::string path = dir.file("wb");
    write_segment(path, good + c.bad + record(1, 3, "after", "x"));
    ReplayStats rs;
    std::unique_ptr<Journal> j;
    std::vector<JournalRecord> got = replay_all(path, {}, &rs, &j);
    EXPECT_EQ(seqs(got), std::vector<std::uint64_t>{1}) << c.what;
    EXPECT_EQ(rs.corrupt, 1u) << c.what;
    EXPECT_EQ(rs.checkpoint, 0u) << c.what;
    ASSERT_NE(j, nullptr) << c.what;
    auto seq = j->append(JournalRecordType::kPut, "next", "y");
    ASSERT_TRUE(seq.ok()) << c.what;
    EXPECT_EQ(*seq, 2u) << c.what;
  }
}

// A length field that claims far more than the file holds is a torn tail:
// nothing is allocated for it (the file is 40 bytes; the claim is 1 GiB).
TEST(JournalTest, ALengthBeyondTheFileIsTornAndAllocatesNothing) {
  TempDir dir;
  const std::string path = dir.file("wb");
  std::string rec = record(1, 1, "a", "1");
  std::string claim;
  journal_internal::put_u32(claim, static_cast<std::uint32_t>(journal_internal::kMaxBody));
  rec.replace(0, 4, claim);
  write_segment(path, rec);
  ReplayStats rs;
  EXPECT_TRUE(replay_all(path, {}, &rs).empty());
  EXPECT_EQ(rs.torn, 1u);
  EXPECT_EQ(rs.skipped_bytes, rec.size());
}

// Random damage (bit flips, overwritten bytes, truncation, appended garbage)
// to a journal with checkpoints: replay never fails or misbehaves (ASan and
// UBSan run this), returns only records that were written, in increasing seq
// order, and the journal opens with a sequence that can grow.
TEST(JournalTest, RandomDamageIsNeverTrusted) {
  TempDir dir;
  const std::string path = dir.file("wb");
  {
    auto j = open_empty(path, {.fsync = FsyncPolicy::kNever});
    for (int i = 0; i < 40; ++i) {
      auto seq =
          j->append(JournalRecordType::kPut, "k" + std::to_string(i), std::string(i % 7, 'v'));
      ASSERT_TRUE(seq.ok());
      if (i % 10 == 9) {
        ASSERT_TRUE(j->enqueue_checkpoint(*seq - 3));
      }
    }
  }
  const std::string seg = Journal::segment_files(path).front();
  std::string original;
  {
    std::ifstream f(seg, std::ios::binary);
    original.assign(std::istreambuf_iterator<char>(f), {});
  }
  std::mt19937_64 rng(12345);
  for (int round = 0; round < 500; ++round) {
    std::string data = original;
    switch (rng() % 4) {
      case 0:
        for (int n = 1 + static_cast<int>(rng() % 3); n > 0; --n) {
          data[rng() % data.size()] ^= static_cast<char>(1u << (rng() % 8));
        }
        break;
      case 1:
        data[rng() % data.size()] = static_cast<char>(rng());
        break;
      case 2:
        data.resize(rng() % data.size());
        break;
      default:
        for (int n = static_cast<int>(rng() % 64); n > 0; --n)
          data.push_back(static_cast<char>(rng()));
        break;
    }
    TempDir d2;
    const std::string p2 = d2.file("wb");
    {
      std::ofstream f(p2 + ".000000000001", std::ios::binary);
      f << data;
    }
    ReplayStats rs;
    std::unique_ptr<Journal> j;
    std::vector<JournalRecord> got = replay_all(p2, {.fsync = FsyncPolicy::kNever}, &rs, &j);
    ASSERT_NE(j, nullptr) << "round " << round;
    std::uint64_t prev = 0;
    for (const JournalRecord& r : got) {
      EXPECT_GT(r.seq, prev) << "round " << round;
      EXPECT_LE(r.seq, 40u) << "round " << round;
      prev = r.seq;
      EXPECT_EQ(r.key, "k" + std::to_string(r.seq - 1)) << "round " << round;
    }
    EXPECT_LE(rs.checkpoint, 41u) << "round " << round;
    auto seq = j->append(JournalRecordType::kPut, "next", "y");
    ASSERT_TRUE(seq.ok()) << "round " << round;
    EXPECT_LE(*seq, 41u) << "round " << round;
  }
}

// Segment numbers come from 12-digit names; a journal whose last number is
// the largest one refuses to open rather than make a name replay cannot see.
TEST(JournalTest, ExhaustedSegmentNumbersFailToOpen) {
  TempDir dir;
  const std::string path = dir.file("wb");
  {
    std::ofstream f(path + ".999999999999", std::ios::binary);
    f << journal_internal::kMagic;
  }
  auto j = Journal::open(path, {}, [](JournalRecord&&) {});
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(JournalTest, RecordsOverOneGibibyteAreRefused) {
  using journal_internal::kMaxBody;
  using journal_internal::kMinBody;
  using journal_internal::record_fits;
  constexpr std::size_t kMaxSize = std::numeric_limits<std::size_t>::max();
  EXPECT_TRUE(record_fits(10, 10));
  EXPECT_TRUE(record_fits(0, kMaxBody - kMinBody));
  EXPECT_FALSE(record_fits(0, kMaxBody - kMinBody + 1));
  EXPECT_FALSE(record_fits(kMaxBody, 0));
  EXPECT_FALSE(record_fits(kMaxSize, kMaxSize));  // no wrap-around
  EXPECT_FALSE(record_fits(1, kMaxSize));
}

}  // namespace
}  // namespace larder::internal
