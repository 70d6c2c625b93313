// SPDX-License-Identifier: Apache-2.0
//
// Tests for internal::Journal (the write-back journal) and internal::crc32c.
#include "larder/internal/journal.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <barrier>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
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
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // the standard check value
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  const std::string s = "The quick brown fox jumps over the lazy dog";
  for (std::size_t cut = 0; cut <= s.size(); ++cut) {
    EXPECT_EQ(crc32c_extend(crc32c(std::string_view(s).substr(0, cut)),
                            std::string_view(s).substr(cut)),
              crc32c(s));
  }
}

TEST(JournalTest, RoundTripInOrder) {
  TempDir dir;
  const std::string path = dir.file("wb");
  for (FsyncPolicy p : {FsyncPolicy::kEveryWrite, FsyncPolicy::kEveryInterval, FsyncPolicy::kNever}) {
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
      EXPECT_EQ(got[static_cast<std::size_t>(i)].value, std::string(static_cast<std::size_t>(i), 'v'));
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
  { auto j = open_empty(path); ASSERT_TRUE(j->append(JournalRecordType::kPut, "a", "1").ok()); }
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
    EXPECT_EQ(got[i].value, std::to_string(next[static_cast<std::size_t>(t)]++));  // per-thread order kept
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
              static_cast<unsigned long long>(s.appends), static_cast<unsigned long long>(s.commits));
  std::vector<JournalRecord> got = replay_all(path, {});
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kThreads * kPerThread));
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].seq, i + 1);
}

// Writes 10 records with a fresh journal and returns the segment holding them.
std::string write_ten(const std::string& path) {
  auto j = open_empty(path);
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(j->append(JournalRecordType::kPut, "key" + std::to_string(i), "value" + std::to_string(i)).ok());
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
    for (const std::string& f : Journal::segment_files(path)) if (f != seg) fs::remove(f, ec);
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

}  // namespace
}  // namespace larder::internal
