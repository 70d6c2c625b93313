// SPDX-License-Identifier: Apache-2.0
//
// Journal: the write-back journal, an append-only log of "put key value" and
// "erase key" records that makes acknowledged write-back puts survive a crash.
//
// WriteBehind (internal/write_back.h) appends a record for every put and erase
// before it acknowledges it, replays the journal through the Writer when it is
// constructed, and tells the journal as flushes complete which records are no
// longer needed, so the files stay bounded. The journal itself knows nothing
// of keys and values: records carry bytes (made by larder::Codec).
//
// How it differs from the obvious alternative (one file, fsync per append,
// rewritten on compaction): concurrent appenders share one write() and one
// fsync (group commit), and the log is a chain of segments that are deleted
// whole once every record in them has been flushed, so compaction never
// rewrites a file under a live writer.
//
// Thread-safety: every method may be called concurrently, except that open()
// replays before the Journal exists and the destructor must not race others.
//
// Example:
//
//   JournalOptions o{.fsync = FsyncPolicy::kEveryWrite};
//   auto j = Journal::open("/var/lib/app/wb", o, [](JournalRecord&& r) { ... });
//   absl::StatusOr<std::uint64_t> seq = (*j)->append(JournalRecordType::kPut, key, value);
//   ...                                   // once everything <= seq was flushed:
//   (*j)->release_below(seq + 1);
//
// ---------------------------------------------------------------------------
// Design
//
// Files. The journal at path P is the files "P.000000000001", "P.000000000002",
// ... (segments, numbered in creation order). Exactly one, the newest, is
// active (appended to); the others are sealed. Opening a journal replays every
// existing segment in number order, then always starts a NEW segment: a
// segment that ended in a torn record is never appended to, so garbage can
// never sit in the middle of a log that is still growing.
//
// Segment layout (all integers little-endian):
//
//   +----------+-------------------------------------------------+
//   | "LRDRJNL1" (8 bytes, magic + format version)                |
//   +----------+--------+------+---------+---------+-----+-------+
//   | len (u32)| crc u32| type | seq u64 | klen u32| key | value | ... next record
//   +----------+--------+------+---------+---------+-----+-------+
//              len = bytes after the crc field (1 + 8 + 4 + klen + vlen)
//              crc = CRC-32C over the 4 len bytes and the len bytes after crc
//              type: 1 put, 2 erase (no value)
//
// Replay reads records until the first one that is incomplete (TORN: the file
// ends inside its header or body, the normal result of a crash mid-append) or
// invalid (CORRUPT: a CRC mismatch, a length below the minimum, an unknown
// type, a sequence number that does not increase). Either way it stops reading
// that segment there, counts the event in ReplayStats, and never hands the bad
// record (or anything after it in the segment) to the caller. It then goes on
// with the next segment, which a later process generation wrote after its own
// replay. The CRC covers the length, so a corrupted length is caught too.
//
// Sequence numbers. enqueue() gives each record the next number (starting
// after the largest one replayed) under the journal's mutex, in the order the
// records reach the file. WriteBehind calls it while holding its own lock, so
// journal order equals the order in which the dirty set saw the writes.
//
// Group commit (leader/follower, as in LevelDB's DBImpl::Write and MySQL's
// binlog group commit):
//
//   enqueue()      : under mu_, encode the record into buf_, return its seq.
//   wait_durable(s): under mu_, while durable_seq_ < s:
//       if no thread is doing I/O, become the LEADER: take all of buf_, drop
//         mu_, write() it (and fdatasync it under kEveryWrite), retake mu_,
//         publish durable_seq_ = the last seq taken, wake everyone;
//       else FOLLOW: wait on cv_; the leader's write may already cover s.
//
// So N threads appending at once cost about two write()+fsync rounds, not N.
// Only the thread holding io_busy_ touches the file descriptor; the hand-off
// of io_busy_ under mu_ orders all file I/O.
//
// Fsync policies and what an acknowledged record survives:
//
//   policy          process crash (SIGKILL, abort)   machine crash (power loss, kernel panic)
//   kEveryWrite     yes                              yes (fdatasync before acknowledging)
//   kEveryInterval  yes                              all but the last `fsync_interval`
//   kNever          yes                              whatever the OS had written back
//
// "Durable" in wait_durable() means write() returned (the bytes are in the
// kernel's page cache, which outlives the process) plus, under kEveryWrite,
// fdatasync() returned. kEveryWrite is the DEFAULT, because a journal is asked
// for precisely to not lose acknowledged writes; group commit keeps its cost
// per batch of concurrent puts, not per put. kEveryInterval is Redis's
// "appendfsync everysec" trade: a background thread fdatasyncs every interval
// (real time, not the cache's Clock: it bounds loss in real seconds).
//
// Compaction. Records are never rewritten in place. When the active segment
// passes segment_bytes the leader seals it (fdatasync unless kNever) and opens
// the next one (fsyncing the directory so the new name survives). The owner
// calls release_below(L) with L = the smallest seq it still needs (the newest
// record of every key still dirty); every sealed segment whose records are all
// below L is deleted. A key that keeps failing would pin its segment forever,
// so relog_below() names a seq below which the owner should append a fresh
// copy of each still-dirty record ("relog") once two or more sealed segments
// are pinned; after that the old segments go too. The live files therefore
// stay within about 2 x segment_bytes + (size of the dirty set), however long
// the process runs.
//
// Errors. A failed write() or fsync leaves the file in an unknown state (after
// a failed fsync Linux may have dropped the dirty pages: "fsyncgate"), so any
// I/O error is sticky: every later wait_durable() returns it (kDataLoss or
// kInternal with errno text) and the owner must not acknowledge writes. Open
// failures are returned from open().
//
// One owner per path. open() takes an exclusive flock on "<path>.lock"
// (created if missing, never deleted: deleting a lock file races with the next
// opener) and holds it while the Journal lives. A second Journal on the same
// path, in another process or in this one, would append to the same
// segments and replay (and write) the other's records: its open() fails with
// kFailedPrecondition instead. The lock dies with the process, so a crash
// never leaves the path locked.
#ifndef LARDER_INTERNAL_JOURNAL_H_
#define LARDER_INTERNAL_JOURNAL_H_

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "larder/internal/absl_compat.h"
#include "larder/internal/crc32c.h"
#include "larder/internal/mutex.h"

namespace larder::internal {

// FsyncPolicy: when the journal forces appended records to stable storage.
// See the table in the design notes above; kEveryWrite is the default.
enum class FsyncPolicy {
  kEveryWrite,     // fdatasync before a put is acknowledged (group-committed)
  kEveryInterval,  // fdatasync every JournalOptions::fsync_interval in the background
  kNever,          // leave it to the OS; survives process crashes only
};

struct JournalOptions {
  FsyncPolicy fsync = FsyncPolicy::kEveryWrite;
  // kEveryInterval only: time between background fdatasyncs (real time). Must be > 0.
  std::chrono::milliseconds fsync_interval{1000};
  // Seal the active segment and start a new one once it holds this many bytes.
  // Must be > 0. Small values compact sooner and rotate more often.
  std::size_t segment_bytes = std::size_t{64} << 20;
};

enum class JournalRecordType : std::uint8_t { kPut = 1, kErase = 2 };

// JournalRecord: one replayed record. `value` is empty for kErase.
struct JournalRecord {
  JournalRecordType type = JournalRecordType::kPut;
  std::uint64_t seq = 0;
  std::string key;
  std::string value;
};

// ReplayStats: what open() found.
struct ReplayStats {
  std::uint64_t segments = 0;  // segment files read
  std::uint64_t records = 0;   // valid records handed to the callback
  std::uint64_t torn = 0;      // segments that ended inside a record (crash mid-append)
  std::uint64_t corrupt = 0;   // segments cut short by a bad checksum, length, type or seq
  std::uint64_t skipped_bytes = 0;  // bytes after the first torn/corrupt record, never applied
};

// JournalStats: counters since open. Read without stopping appenders.
struct JournalStats {
  std::uint64_t appends = 0;   // records enqueued
  std::uint64_t commits = 0;   // write() rounds (one per group commit)
  std::uint64_t syncs = 0;     // fdatasync calls on segments
  std::uint64_t bytes = 0;     // bytes written since open
  std::uint64_t segments = 0;  // segment files alive now (sealed + active)
  std::uint64_t live_bytes = 0;  // bytes in the segment files alive now
  std::uint64_t deleted_segments = 0;
};

namespace journal_internal {

inline constexpr std::string_view kMagic = "LRDRJNL1";
inline constexpr std::size_t kHeaderBytes = 8;           // len + crc
inline constexpr std::size_t kMinBody = 1 + 8 + 4;        // type + seq + klen
inline constexpr std::size_t kMaxBody = std::size_t{1} << 30;
inline constexpr int kSegmentDigits = 12;

inline void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}
inline void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}
inline std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}
inline std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

// Appends one encoded record to out.
inline void encode_record(std::string& out, JournalRecordType type, std::uint64_t seq,
                          std::string_view key, std::string_view value) {
  const std::size_t start = out.size();
  const std::size_t body = kMinBody + key.size() + value.size();
  put_u32(out, static_cast<std::uint32_t>(body));
  put_u32(out, 0);  // crc, patched below
  out.push_back(static_cast<char>(type));
  put_u64(out, seq);
  put_u32(out, static_cast<std::uint32_t>(key.size()));
  out.append(key);
  out.append(value);
  std::uint32_t crc = crc32c(std::string_view(out).substr(start, 4));
  crc = crc32c_extend(crc, std::string_view(out).substr(start + kHeaderBytes, body));
  std::string tmp;
  put_u32(tmp, crc);
  out.replace(start + 4, 4, tmp);
}

// A Status with its own representation. absl::Status shares a refcounted rep
// between copies, and Debian's abseil (not built with TSan) drops the last
// reference inside the library, so copies handed to several threads make
// ThreadSanitizer report false races. Statuses that cross threads are copied
// with this instead.
inline absl::Status unshared(const absl::Status& s) {
  return s.ok() ? absl::OkStatus() : absl::Status(s.code(), s.message());
}

inline absl::Status errno_status(std::string_view what, const std::string& path, int err) {
  return absl::DataLossError(absl::StrCat("journal: ", av(what), " ", av(path), ": ",
                                          av(std::string_view(std::strerror(err)))));
}

inline absl::Status write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status("write", path, errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return absl::OkStatus();
}

inline absl::Status fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status("open directory", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return errno_status("fsync directory", dir, err);
  return absl::OkStatus();
}

// Reads a whole file. Segments are bounded by segment_bytes (plus one batch).
inline absl::StatusOr<std::string> read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_status("open", path, errno);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return errno_status("read", path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace journal_internal

class Journal {
 public:
  using ReplayFn = std::function<void(JournalRecord&&)>;

  // segment_files: the existing segment files of the journal at `path`, oldest
  // first. For tests and tools.
  static std::vector<std::string> segment_files(const std::string& path) {
    std::vector<std::pair<std::uint64_t, std::string>> found;
    const std::filesystem::path p(path);
    std::filesystem::path dir = p.parent_path();
    if (dir.empty()) dir = ".";
    const std::string prefix = p.filename().string() + ".";
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.size() != prefix.size() + journal_internal::kSegmentDigits ||
          name.compare(0, prefix.size(), prefix) != 0) {
        continue;
      }
      std::uint64_t n = 0;
      const char* first = name.data() + prefix.size();
      const char* last = name.data() + name.size();
      auto [ptr, err] = std::from_chars(first, last, n);
      if (err != std::errc() || ptr != last) continue;
      found.emplace_back(n, (dir / name).string());
    }
    std::sort(found.begin(), found.end());
    std::vector<std::string> out;
    for (auto& f : found) out.push_back(std::move(f.second));
    return out;
  }

  // open: replays every segment of the journal at `path` through on_record
  // (oldest record first; torn or corrupt tails are counted and skipped), then
  // starts a new active segment. The directory of `path` must exist.
  // Errors: kInvalidArgument for bad options, kDataLoss for I/O failures.
  static absl::StatusOr<std::unique_ptr<Journal>> open(std::string path, JournalOptions options,
                                                      const ReplayFn& on_record) {
    if (path.empty()) return absl::InvalidArgumentError("journal: path is empty");
    if (options.segment_bytes == 0) {
      return absl::InvalidArgumentError("journal: segment_bytes must be > 0");
    }
    if (options.fsync == FsyncPolicy::kEveryInterval && options.fsync_interval.count() <= 0) {
      return absl::InvalidArgumentError(
          "journal: fsync = kEveryInterval needs fsync_interval > 0");
    }
    std::unique_ptr<Journal> j(new Journal(std::move(path), options));
    absl::Status s = j->lock_path();
    if (!s.ok()) return s;
    s = j->replay(on_record);
    if (!s.ok()) return s;
    s = j->start_segment();
    if (!s.ok()) return s;
    if (options.fsync == FsyncPolicy::kEveryInterval) {
      j->syncer_ = std::thread([raw = j.get()] { raw->sync_loop(); });
    }
    return j;
  }

  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // ~Journal: stops the interval syncer, writes what is buffered, fdatasyncs
  // (unless kNever) and closes. Records stay on disk for the next open.
  ~Journal() {
    {
      MutexLock l(&mu_);
      stop_ = true;
      cv_.notify_all();
    }
    if (syncer_.joinable()) syncer_.join();
    (void)wait_durable(last_enqueued());
    MutexLock l(&mu_);
    if (fd_ >= 0) {
      if (options_.fsync != FsyncPolicy::kNever && broken_.ok()) (void)::fdatasync(fd_);
      ::close(fd_);
      fd_ = -1;
    }
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock, last
  }

  // enqueue: buffers one record and returns its sequence number. Cheap (a
  // copy and a CRC under the journal's mutex); nothing is written until some
  // thread calls wait_durable(). Sequence numbers follow call order.
  std::uint64_t enqueue(JournalRecordType type, std::string_view key, std::string_view value) {
    MutexLock l(&mu_);
    const std::uint64_t seq = ++enqueued_seq_;
    journal_internal::encode_record(buf_, type, seq, key, value);
    ++stats_.appends;
    return seq;
  }

  // wait_durable: returns once every record up to `seq` is written (and
  // fdatasynced under kEveryWrite), leading a group commit if no other thread
  // is. Errors: the journal's sticky I/O error (kDataLoss).
  absl::Status wait_durable(std::uint64_t seq) {
    MutexLock l(&mu_);
    seq = std::min(seq, enqueued_seq_);  // nothing beyond what was handed out
    for (;;) {
      if (durable_seq_ >= seq) return absl::OkStatus();
      if (!broken_.ok()) return journal_internal::unshared(broken_);
      if (!io_busy_) {
        lead(l);
        continue;
      }
      cv_.wait(l, [&] { return !io_busy_ || durable_seq_ >= seq || !broken_.ok(); });
    }
  }

  // append: enqueue + wait_durable. Returns the record's seq.
  absl::StatusOr<std::uint64_t> append(JournalRecordType type, std::string_view key,
                                       std::string_view value) {
    const std::uint64_t seq = enqueue(type, key, value);
    absl::Status s = wait_durable(seq);
    if (!s.ok()) return s;
    return seq;
  }

  // health: OK, or the sticky I/O error every later wait_durable() returns.
  absl::Status health() const {
    MutexLock l(&mu_);
    return journal_internal::unshared(broken_);
  }

  // last_enqueued: the highest sequence number handed out so far (0: none).
  std::uint64_t last_enqueued() const {
    MutexLock l(&mu_);
    return enqueued_seq_;
  }

  // sync: fdatasyncs everything written so far, now, whatever the policy.
  absl::Status sync() {
    absl::Status s = wait_durable(last_enqueued());
    if (!s.ok()) return s;
    MutexLock l(&mu_);
    cv_.wait(l, [&] { return !io_busy_; });
    if (!broken_.ok()) return journal_internal::unshared(broken_);
    io_busy_ = true;
    const int fd = fd_;
    l.native().unlock();
    const int rc = ::fdatasync(fd);
    const int err = errno;
    l.native().lock();
    io_busy_ = false;
    ++stats_.syncs;
    if (rc != 0 && broken_.ok()) broken_ = journal_internal::errno_status("fdatasync", path_, err);
    cv_.notify_all();
    return journal_internal::unshared(broken_);
  }

  // sealed_segments: how many segments are sealed (not active) and alive.
  std::size_t sealed_segments() const {
    MutexLock l(&mu_);
    return sealed_.size();
  }

  // relog_below: 0 when nothing needs relogging; otherwise the owner should
  // append a fresh record for every key it still needs whose newest record
  // has a seq below the returned value, then call release_below(). Non-zero
  // only when two or more sealed segments are alive (the newest sealed
  // segment is left to ordinary flushing).
  std::uint64_t relog_below() const {
    MutexLock l(&mu_);
    if (sealed_.size() < 2) return 0;
    std::uint64_t m = 0;
    for (std::size_t i = 0; i + 1 < sealed_.size(); ++i) m = std::max(m, sealed_[i].max_seq);
    return m + 1;
  }

  // release_below: the owner no longer needs any record with seq < `seq`
  // (each such record was flushed, or superseded by a newer DURABLE record of
  // the same key). Deletes the sealed segments that hold only such records.
  void release_below(std::uint64_t seq) {
    std::vector<std::string> doomed;
    {
      MutexLock l(&mu_);
      while (!sealed_.empty() && sealed_.front().max_seq < seq) {
        doomed.push_back(sealed_.front().path);
        stats_.live_bytes -= sealed_.front().bytes;
        sealed_.pop_front();
        ++stats_.deleted_segments;
      }
    }
    for (const std::string& p : doomed) ::unlink(p.c_str());
  }

  // retire: deletes every segment, active included, and closes the journal;
  // later appends fail. For the owner's clean shutdown with nothing dirty.
  absl::Status retire() {
    absl::Status s = wait_durable(last_enqueued());
    MutexLock l(&mu_);
    cv_.wait(l, [&] { return !io_busy_; });
    for (const Segment& seg : sealed_) ::unlink(seg.path.c_str());
    sealed_.clear();
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    ::unlink(active_.path.c_str());
    stats_.live_bytes = 0;
    if (broken_.ok()) broken_ = absl::FailedPreconditionError("journal: retired");
    return s;
  }

  ReplayStats replay_stats() const { return replay_stats_; }

  JournalStats stats() const {
    MutexLock l(&mu_);
    JournalStats s = stats_;
    s.segments = sealed_.size() + (fd_ >= 0 ? 1 : 0);
    return s;
  }

  const std::string& path() const { return path_; }
  const JournalOptions& options() const { return options_; }

 private:
  struct Segment {
    std::uint64_t number = 0;
    std::string path;
    std::uint64_t max_seq = 0;  // largest seq in it (0: no records)
    std::uint64_t bytes = 0;
  };

  Journal(std::string path, JournalOptions options)
      : path_(std::move(path)), options_(options) {
    std::filesystem::path p(path_);
    dir_ = p.parent_path().empty() ? std::string(".") : p.parent_path().string();
  }

  std::string segment_path(std::uint64_t number) const {
    char digits[32];
    std::snprintf(digits, sizeof(digits), "%0*llu", journal_internal::kSegmentDigits,
                  static_cast<unsigned long long>(number));
    return absl::StrCat(path_, ".", digits);
  }

  // lock_path: the exclusive flock on "<path>.lock" (see the essay).
  absl::Status lock_path() {
    const std::string p = absl::StrCat(path_, ".lock");
    lock_fd_ = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) {
      return absl::DataLossError(absl::StrCat("journal: cannot open ", p, ": ", std::strerror(errno)));
    }
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      if (e == EWOULDBLOCK) {
        return absl::FailedPreconditionError(absl::StrCat(
            "journal: ", path_, " is in use by another journal (", p,
            " is locked: another process, or another cache in this one, uses this path)"));
      }
      return absl::DataLossError(absl::StrCat("journal: cannot lock ", p, ": ", std::strerror(e)));
    }
    return absl::OkStatus();
  }

  // Replays every existing segment; runs before the Journal is shared.
  absl::Status replay(const ReplayFn& on_record) {
    using namespace journal_internal;
    std::uint64_t last_seq = 0;
    std::uint64_t last_number = 0;
    for (const std::string& file : segment_files(path_)) {
      const std::string name = std::filesystem::path(file).filename().string();
      std::uint64_t number = 0;
      std::from_chars(name.data() + name.size() - kSegmentDigits, name.data() + name.size(),
                      number);
      last_number = std::max(last_number, number);
      absl::StatusOr<std::string> data = read_file(file);
      if (!data.ok()) return data.status();
      ++replay_stats_.segments;
      Segment seg{number, file, 0, data->size()};
      std::string_view rest(*data);
      bool bad = false;
      if (rest.size() < kMagic.size()) {
        if (!rest.empty()) ++replay_stats_.torn;  // crashed while writing the magic
        replay_stats_.skipped_bytes += rest.size();
        rest = {};
      } else if (rest.substr(0, kMagic.size()) != kMagic) {
        ++replay_stats_.corrupt;
        replay_stats_.skipped_bytes += rest.size();
        rest = {};
      } else {
        rest.remove_prefix(kMagic.size());
      }
      while (!rest.empty() && !bad) {
        if (rest.size() < kHeaderBytes) {
          ++replay_stats_.torn;
          bad = true;
          break;
        }
        const std::uint32_t len = get_u32(rest.data());
        const std::uint32_t crc = get_u32(rest.data() + 4);
        if (len < kMinBody || len > kMaxBody) {
          ++replay_stats_.corrupt;
          bad = true;
          break;
        }
        if (rest.size() - kHeaderBytes < len) {
          ++replay_stats_.torn;
          bad = true;
          break;
        }
        const std::string_view body = rest.substr(kHeaderBytes, len);
        const std::uint32_t want = crc32c_extend(crc32c(rest.substr(0, 4)), body);
        const auto type = static_cast<JournalRecordType>(static_cast<unsigned char>(body[0]));
        const std::uint64_t seq = get_u64(body.data() + 1);
        const std::uint32_t klen = get_u32(body.data() + 9);
        if (want != crc || (type != JournalRecordType::kPut && type != JournalRecordType::kErase) ||
            klen > len - kMinBody || seq <= last_seq) {
          ++replay_stats_.corrupt;
          bad = true;
          break;
        }
        JournalRecord r;
        r.type = type;
        r.seq = seq;
        r.key.assign(body.substr(kMinBody, klen));
        r.value.assign(body.substr(kMinBody + klen));
        last_seq = seq;
        seg.max_seq = seq;
        ++replay_stats_.records;
        on_record(std::move(r));
        rest.remove_prefix(kHeaderBytes + len);
      }
      replay_stats_.skipped_bytes += bad ? rest.size() : 0;
      stats_.live_bytes += seg.bytes;
      sealed_.push_back(std::move(seg));
    }
    enqueued_seq_ = durable_seq_ = last_seq;
    next_number_ = last_number + 1;
    return absl::OkStatus();
  }

  // Creates the next segment and makes it active. Called by open() and by the
  // leader (io_busy_ held) when rotating.
  absl::Status start_segment() {
    const std::uint64_t number = next_number_++;
    const std::string p = segment_path(number);
    const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return journal_internal::errno_status("create", p, errno);
    absl::Status s = journal_internal::write_all(fd, journal_internal::kMagic, p);
    if (s.ok() && options_.fsync != FsyncPolicy::kNever) {
      if (::fdatasync(fd) != 0) s = journal_internal::errno_status("fdatasync", p, errno);
      if (s.ok()) s = journal_internal::fsync_dir(dir_);
    }
    if (!s.ok()) {
      ::close(fd);
      return s;
    }
    MutexLock l(&mu_);
    if (fd_ >= 0) {
      ::close(fd_);
      sealed_.push_back(active_);
    }
    fd_ = fd;
    active_ = Segment{number, p, 0, journal_internal::kMagic.size()};
    stats_.live_bytes += active_.bytes;
    return absl::OkStatus();
  }

  // One group commit; called with mu_ held and io_busy_ false.
  void lead(MutexLock& l) {
    io_busy_ = true;
    std::string batch;
    batch.swap(buf_);
    const std::uint64_t upto = enqueued_seq_;
    const int fd = fd_;
    const bool sync = options_.fsync == FsyncPolicy::kEveryWrite;
    const bool rotate = active_.bytes + batch.size() >= options_.segment_bytes;
    l.native().unlock();

    absl::Status s = journal_internal::write_all(fd, batch, active_.path);
    if (s.ok() && (sync || (rotate && options_.fsync != FsyncPolicy::kNever))) {
      if (::fdatasync(fd) != 0) s = journal_internal::errno_status("fdatasync", active_.path, errno);
    }
    l.native().lock();
    ++stats_.commits;
    stats_.bytes += batch.size();
    const bool synced = sync || (rotate && options_.fsync != FsyncPolicy::kNever);
    if (synced) ++stats_.syncs;
    active_.bytes += batch.size();
    stats_.live_bytes += batch.size();
    if (upto > 0 && !batch.empty()) active_.max_seq = upto;
    if (s.ok()) {
      written_seq_ = upto;
      if (synced) synced_seq_ = upto;
      if (rotate) {
        l.native().unlock();
        s = start_segment();  // takes mu_ itself
        l.native().lock();
      }
    }
    if (s.ok()) {
      durable_seq_ = upto;
    } else if (broken_.ok()) {
      broken_ = s;
    }
    io_busy_ = false;
    cv_.notify_all();
  }

  // kEveryInterval: fdatasync whatever was written since the last sync, every
  // fsync_interval of real time.
  void sync_loop() {
    MutexLock l(&mu_);
    while (!stop_) {
      cv_.wait_for(l, options_.fsync_interval, [&] { return stop_; });
      if (stop_) break;
      cv_.wait(l, [&] { return !io_busy_; });
      if (written_seq_ <= synced_seq_ || !broken_.ok() || fd_ < 0) continue;
      io_busy_ = true;
      const int fd = fd_;
      const std::uint64_t upto = written_seq_;
      l.native().unlock();
      const int rc = ::fdatasync(fd);
      const int err = errno;
      l.native().lock();
      io_busy_ = false;
      ++stats_.syncs;
      if (rc == 0) {
        synced_seq_ = std::max(synced_seq_, upto);
      } else if (broken_.ok()) {
        broken_ = journal_internal::errno_status("fdatasync", path_, err);
      }
      cv_.notify_all();
    }
  }

  const std::string path_;
  const JournalOptions options_;
  std::string dir_;
  ReplayStats replay_stats_;  // written by open() only
  std::thread syncer_;

  mutable Mutex mu_;
  CondVar cv_;
  std::string buf_;                   // encoded records not yet handed to a leader
  std::uint64_t enqueued_seq_ = 0;    // last seq handed out
  std::uint64_t written_seq_ = 0;     // last seq write() returned for
  std::uint64_t synced_seq_ = 0;      // last seq known fdatasynced
  std::uint64_t durable_seq_ = 0;     // last seq wait_durable() may report
  bool io_busy_ = false;              // a leader/syncer owns fd_ and active_
  bool stop_ = false;
  absl::Status broken_;               // sticky I/O error
  int fd_ = -1;
  int lock_fd_ = -1;                  // holds the flock on "<path>.lock"
  Segment active_;
  std::deque<Segment> sealed_;        // oldest first
  std::uint64_t next_number_ = 1;
  JournalStats stats_;
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_JOURNAL_H_
