// SPDX-License-Identifier: Apache-2.0
//
// Journal: the write-back journal, an append-only log of "put key value" and
// "erase key" records that makes acknowledged write-back puts survive a crash.
//
// WriteBack (internal/write_back.h) appends a record for every put and erase
// before it acknowledges it, replays the journal through the Writer when it is
// constructed, and tells the journal as flushes complete which records are no
// longer needed (checkpoint records in the log, and release_below() to delete
// whole segments), so a restart replays only what was not yet written and the
// files stay bounded. The journal itself knows nothing of keys and values:
// records carry bytes (made by larder::Codec).
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
//   (*j)->enqueue_checkpoint(seq + 1);     // a restart skips records < seq + 1
//   (*j)->write_buffered();
//   (*j)->release_below(seq + 1);          // and their sealed segments go
//
// ---------------------------------------------------------------------------
// Design
//
// Files. The journal at path P is the files "P.000000000001", "P.000000000002",
// ... (segments, numbered in creation order). Exactly one, the newest, is
// active (appended to); the others are sealed. Opening a journal replays the
// existing segments in number order, then always starts a NEW segment: a
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
//              type: 1 put, 2 erase (no value), 3 checkpoint (below)
//
// A checkpoint record (type 3) has no key and an 8-byte value, the low-water
// mark W: "every record with seq < W is acknowledged" (written through the
// owner's Writer, or superseded by a newer record of its key that precedes
// this checkpoint in the log). A checkpoint takes no sequence number of its
// own: its seq field is the last seq handed out when it was enqueued, so
// seqs in a segment never decrease (data records strictly increase), and
// W <= seq + 1 (nothing can be acknowledged before it exists).
//
// Replay reads records until the first one that is incomplete (TORN: the file
// ends inside its header or body, the normal result of a crash mid-append) or
// invalid (CORRUPT: a CRC mismatch, a length out of range, an unknown type, a
// data seq that does not increase or is beyond 2^62, a malformed checkpoint).
// Either way it stops reading that segment there, counts the event in
// ReplayStats, and never hands the bad record (or anything after it in the
// segment) to the caller. It then goes on with the next segment, which a later
// process generation wrote after its own replay. The CRC covers the length, so
// a corrupted length is caught too.
//
// Replay runs in two passes. The first validates every segment and finds the
// largest checkpoint W among the valid prefixes; the second re-reads the
// segments that hold a data record >= W and hands ONLY those records to the
// caller (ReplayStats::acknowledged counts the ones skipped). A checkpoint in
// a later segment applies to records in earlier ones: W is a statement about
// sequence numbers, not about files. open() then starts the new segment with a
// copy of W and deletes the segments that hold only records below it.
//
// Bytes from outside. Segment files may be truncated, bit-flipped or written
// by somebody else, so decoding never trusts them: a length is checked against
// [minimum, 1 GiB] and against the bytes actually left in the file before
// anything is read (no allocation is ever sized by a length field: records are
// views into the file already read, whose size the filesystem reports), a key
// length must fit inside its record, sequence numbers and marks above 2^62 are
// corrupt (so seq + 1 never wraps and the next seq handed out stays valid),
// and no field is a time. Segment numbers come from file names of exactly 12
// digits; a journal whose numbers are exhausted refuses to open instead of
// creating a 13-digit name that a later replay would not see.
//
// Sequence numbers. enqueue() gives each record the next number (starting
// after the largest one replayed) under the journal's mutex, in the order the
// records reach the file. WriteBack calls it while holding its own lock, so
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
// Checkpoints: what a restart replays. The owner knows which records it no
// longer needs: L = the smallest seq it still needs (the newest record of
// every key still dirty; last seq + 1 when none is). Sequence order is not
// acknowledgement order (a key's later put may be written while an earlier
// record of another key is still pending, failing and retried), so the mark
// is this LOW-WATER MARK, never "the newest seq written". The owner appends
// enqueue_checkpoint(L) after every flush batch (and from the put path once L
// has moved far enough) and write_buffered() writes it without an fsync. So a
// restart replays:
//   every record not yet acknowledged (seq >= the true low-water mark), plus
//   the records acknowledged since the newest checkpoint that reached the file
//   (the owner's window; see write_back.h).
// That is at-least-once delivery: a record may be replayed although it was
// written (the owner's Writer must tolerate that), never skipped while needed:
//   * A checkpoint is only honoured if replay reaches it, i.e. every record
//     before it in its segment is intact; and earlier segments were fsynced
//     when they were sealed (unless kNever). So a record that superseded an
//     older one is in the log whenever the checkpoint that skips the older
//     one is. Checkpoints therefore need no fsync of their own: losing one
//     (a torn tail, a machine crash) only means replaying more.
//   * A crash while a checkpoint is being written leaves a torn tail: it is
//     counted, ignored, and the previous checkpoint applies.
//   * W only grows: enqueue_checkpoint ignores a mark that is not larger.
//
// Compaction. Records are never rewritten in place. When the active segment
// passes segment_bytes, or its first data record was written segment_age ago
// (Clock time; a quiet journal's acknowledged records then go too), the leader
// seals it (fdatasync unless kNever) and opens the next one, which starts with
// a checkpoint carrying the newest mark written so far (fsyncing the directory
// so the new name survives). The owner calls release_below(L) with the same L
// as for checkpoints, once the records it counts as superseding are durable;
// every sealed segment whose records are all below L is deleted. A crash
// between a roll and a deletion leaves an extra sealed segment: the next
// open() deletes it if the newest checkpoint covers it, else replays it. A key that keeps failing
// would pin its segment forever, so relog_below() names a seq below which the owner should append a
// fresh copy of each still-dirty record ("relog") once two or more sealed segments are pinned and
// at most half of their records are still needed (relogging mostly-live segments would only move
// them: forever, when the dirty set's records fill more than a segment); after that the old
// segments go too. The live files therefore stay within about 2 x segment_bytes + 2 x (size of the
// dirty set's records), however long the process runs (tests/
// write_back_bounds_test.cc).
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
// never leaves the path locked. It is also what makes checkpoints and segment
// deletions safe: only the owner's view of what is acknowledged is ever
// written into, or acted on in, the log.
//
// Where the code is: Journal works on encoded bytes only, so its members and
// the file helpers (write_all, fsync_dir, read_file, the record encoders) are
// compiled once in larder::core (src/core/journal.cc); this header keeps the
// format constants, the byte-level decoders and scan_segment (inline, for
// tests and the fuzzer).
#ifndef LARDER_INTERNAL_JOURNAL_H_
#define LARDER_INTERNAL_JOURNAL_H_

#include <chrono>
#include <cstdint>
#include <deque>
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
#include "larder/clock.h"
#include "larder/internal/absl_compat.h"
#include "larder/internal/crc32c.h"
#include "larder/internal/fsync_policy.h"
#include "larder/internal/mutex.h"
#include "larder/metric.h"

namespace larder::internal {

struct JournalOptions {
  FsyncPolicy fsync = FsyncPolicy::kEveryWrite;
  // kEveryInterval only: time between background fdatasyncs (real time). Must be > 0.
  std::chrono::milliseconds fsync_interval{1000};
  // Seal the active segment and start a new one once it holds this many bytes.
  // Must be > 0. Small values compact sooner and rotate more often.
  std::size_t segment_bytes = std::size_t{64} << 20;
  // Also seal it once its first data record is this old (Clock time), so the
  // acknowledged records of a quiet journal can be deleted. 0: by size only.
  // Must be >= 0.
  std::chrono::milliseconds segment_age{std::chrono::minutes(1)};
  // Time source for segment_age; null: system_clock().
  std::shared_ptr<Clock> clock{};
  // Metrics (metric.h): every fdatasync of a segment is timed into it when
  // set (it must outlive the journal). Null: not timed.
  LatencyHistogram* fsync_latency = nullptr;
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
  std::uint64_t segments = 0;       // segment files read
  std::uint64_t records = 0;        // valid records handed to the callback
  std::uint64_t torn = 0;           // segments that ended inside a record (crash mid-append)
  std::uint64_t corrupt = 0;        // segments cut short by a bad checksum, length, type or seq
  std::uint64_t skipped_bytes = 0;  // bytes after the first torn/corrupt record, never applied
  std::uint64_t acknowledged = 0;   // valid records skipped: a checkpoint covers them
  std::uint64_t checkpoint = 0;     // the largest checkpoint mark found (0: none)
};

// JournalStats: counters since open. Read without stopping appenders.
struct JournalStats {
  std::uint64_t appends = 0;     // records enqueued
  std::uint64_t commits = 0;     // write() rounds (one per group commit)
  std::uint64_t syncs = 0;       // fdatasync calls on segments
  std::uint64_t bytes = 0;       // bytes written since open
  std::uint64_t segments = 0;    // segment files alive now (sealed + active)
  std::uint64_t live_bytes = 0;  // bytes in the segment files alive now
  std::uint64_t deleted_segments = 0;
  std::uint64_t checkpoints = 0;  // checkpoint records enqueued since open
};

namespace journal_internal {

inline constexpr std::string_view kMagic = "LRDRJNL1";
inline constexpr std::size_t kHeaderBytes = 8;      // len + crc
inline constexpr std::size_t kMinBody = 1 + 8 + 4;  // type + seq + klen
inline constexpr std::size_t kMaxBody = std::size_t{1} << 30;
inline constexpr int kSegmentDigits = 12;
inline constexpr std::uint64_t kMaxSegmentNumber = 999'999'999'999;  // 12 digits
// Sequence numbers and checkpoint marks above this are corrupt: seq + 1 never
// wraps, and a journal would need 2^62 appends to reach it.
inline constexpr std::uint64_t kMaxSeq = std::uint64_t{1} << 62;
inline constexpr unsigned char kCheckpointType = 3;
inline constexpr std::size_t kCheckpointBody = kMinBody + 8;

// record_fits: a record with these key and value sizes can be journaled
// (its body is at most kMaxBody; larger ones would not replay).
inline bool record_fits(std::size_t key_size, std::size_t value_size) {
  return key_size <= kMaxBody - kMinBody && value_size <= kMaxBody - kMinBody - key_size;
}

inline void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}
inline void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}
inline std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<std::uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}
inline std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

// Appends one encoded record to out.
// Appends one encoded record to out. Precondition: record_fits(key, value).
void encode_raw(std::string& out, unsigned char type, std::uint64_t seq, std::string_view key,
                std::string_view value);

void encode_record(std::string& out, JournalRecordType type, std::uint64_t seq,
                   std::string_view key, std::string_view value);

// Appends a checkpoint record: seq = the last seq handed out, value = mark.
void encode_checkpoint(std::string& out, std::uint64_t seq, std::uint64_t mark);

// One parsed record of a segment's valid prefix.
struct ParsedRecord {
  unsigned char type = 0;
  std::uint64_t seq = 0;
  std::string_view key;
  std::string_view value;  // for a checkpoint: the 8-byte mark
};

enum class ScanEnd { kClean, kTorn, kCorrupt };

// scan_segment: walks the records of one segment's bytes (after its magic),
// calling visit(const ParsedRecord&) for each valid one, and stops at the
// first torn or corrupt one. `last_seq` is the largest seq seen before (any
// segment) and is advanced. Returns how it ended and, in *valid, how many
// bytes of `rest` were valid. Never reads outside `rest`, never allocates.
template <class Visit>
ScanEnd scan_segment(std::string_view rest, std::uint64_t& last_seq, std::size_t* valid,
                     Visit&& visit) {
  const std::size_t total = rest.size();
  auto done = [&](ScanEnd e) {
    *valid = total - rest.size();
    return e;
  };
  while (!rest.empty()) {
    if (rest.size() < kHeaderBytes) return done(ScanEnd::kTorn);
    const std::uint32_t len = get_u32(rest.data());
    const std::uint32_t crc = get_u32(rest.data() + 4);
    if (len < kMinBody || len > kMaxBody) return done(ScanEnd::kCorrupt);
    if (rest.size() - kHeaderBytes < len) return done(ScanEnd::kTorn);
    const std::string_view body = rest.substr(kHeaderBytes, len);
    if (crc32c_extend(crc32c(rest.substr(0, 4)), body) != crc) return done(ScanEnd::kCorrupt);
    ParsedRecord r;
    r.type = static_cast<unsigned char>(body[0]);
    r.seq = get_u64(body.data() + 1);
    const std::uint32_t klen = get_u32(body.data() + 9);
    if (klen > len - kMinBody || r.seq > kMaxSeq) return done(ScanEnd::kCorrupt);
    r.key = body.substr(kMinBody, klen);
    r.value = body.substr(kMinBody + klen);
    if (r.type == kCheckpointType) {
      if (klen != 0 || r.value.size() != 8 || r.seq < last_seq) return done(ScanEnd::kCorrupt);
      const std::uint64_t mark = get_u64(r.value.data());
      if (mark > r.seq + 1) return done(ScanEnd::kCorrupt);  // acknowledges the future
    } else if (r.type == static_cast<unsigned char>(JournalRecordType::kPut) ||
               r.type == static_cast<unsigned char>(JournalRecordType::kErase)) {
      if (r.seq <= last_seq) return done(ScanEnd::kCorrupt);
    } else {
      return done(ScanEnd::kCorrupt);
    }
    last_seq = r.seq;
    visit(r);
    rest.remove_prefix(kHeaderBytes + len);
  }
  return done(ScanEnd::kClean);
}

// A Status with its own representation. absl::Status shares a refcounted rep
// between copies, and Debian's abseil (not built with TSan) drops the last
// reference inside the library, so copies handed to several threads make
// ThreadSanitizer report false races. Statuses that cross threads are copied
// with this instead.
inline absl::Status unshared(const absl::Status& s) {
  return s.ok() ? absl::OkStatus() : absl::Status(s.code(), s.message());
}

absl::Status errno_status(std::string_view what, const std::string& path, int err);

absl::Status write_all(int fd, std::string_view data, const std::string& path);

absl::Status fsync_dir(const std::string& dir);

// Reads a whole file. Segments are bounded by segment_bytes (plus one batch).
absl::StatusOr<std::string> read_file(const std::string& path);

}  // namespace journal_internal

class Journal {
 public:
  using ReplayFn = std::function<void(JournalRecord&&)>;

  // segment_files: the existing segment files of the journal at `path`, oldest
  // first. For tests and tools.
  static std::vector<std::string> segment_files(const std::string& path);

  // open: replays the journal at `path` through on_record: every valid record
  // that the newest checkpoint does not cover, oldest first (torn or corrupt
  // tails are counted and skipped; so are covered records, in
  // ReplayStats::acknowledged). Then starts a new active segment (beginning
  // with that checkpoint) and deletes the segments it covers entirely. The
  // directory of `path` must exist.
  // Errors: kInvalidArgument for bad options, kFailedPrecondition when another
  // Journal holds the path or its segment numbers are exhausted, kDataLoss for
  // I/O failures.
  static absl::StatusOr<std::unique_ptr<Journal>> open(std::string path, JournalOptions options,
                                                       const ReplayFn& on_record);

  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // ~Journal: stops the interval syncer, writes what is buffered, fdatasyncs
  // (unless kNever) and closes. Records stay on disk for the next open.
  ~Journal();

  // enqueue: buffers one record and returns its sequence number. Cheap (a
  // copy and a CRC under the journal's mutex); nothing is written until some
  // thread calls wait_durable(). Sequence numbers follow call order.
  // Precondition: journal_internal::record_fits(key.size(), value.size())
  // (append() checks it; larger records could not be replayed).
  std::uint64_t enqueue(JournalRecordType type, std::string_view key, std::string_view value);

  // enqueue_checkpoint: buffers a checkpoint "every record with seq < mark is
  // acknowledged" (see the essay: the owner's low-water mark; a record counts
  // as acknowledged once written, or once a newer record of its key was
  // enqueued before this call). Returns false, enqueueing nothing, unless
  // mark is larger than every earlier checkpoint's. A mark beyond the last
  // seq + 1 is clamped to it. Written by the next group commit, or by
  // write_buffered(); never needs an fsync of its own.
  bool enqueue_checkpoint(std::uint64_t mark);

  // checkpoint_mark: the largest checkpoint mark enqueued so far (at open: the
  // one replay found; 0: none).
  std::uint64_t checkpoint_mark() const;

  // write_buffered: returns once everything enqueued before the call was
  // handed to write(), leading a group commit without fdatasync if no other
  // thread is writing. For checkpoints (which need no fsync); records that
  // must be durable use wait_durable(). Errors: the sticky I/O error.
  absl::Status write_buffered();

  // wait_durable: returns once every record up to `seq` is written (and
  // fdatasynced under kEveryWrite), leading a group commit if no other thread
  // is. Errors: the journal's sticky I/O error (kDataLoss).
  absl::Status wait_durable(std::uint64_t seq);

  // append: enqueue + wait_durable. Returns the record's seq.
  // Errors: kInvalidArgument when the record is over 1 GiB; as wait_durable.
  absl::StatusOr<std::uint64_t> append(JournalRecordType type, std::string_view key,
                                       std::string_view value);

  // health: OK, or the sticky I/O error every later wait_durable() returns.
  absl::Status health() const;

  // last_enqueued: the highest sequence number handed out so far (0: none).
  std::uint64_t last_enqueued() const;

  // sealed_segments: how many segments are sealed (not active) and alive.
  std::size_t sealed_segments() const;

  // relog_below: 0 when nothing needs relogging; otherwise the owner should
  // append a fresh record for every key it still needs whose newest record
  // has a seq below the returned value, then call release_below(). Non-zero
  // only when two or more sealed segments are alive (the newest sealed
  // segment is left to ordinary flushing).
  std::uint64_t relog_below() const;

  // relog_span_records: the put/erase records in the segments relog_below()
  // covers (0 when it returns 0). The owner relogs only when at most half of
  // them are still needed: rewriting mostly-live segments would only move
  // them, forever when the needed records fill more than a segment.
  std::uint64_t relog_span_records() const;

  // release_below: the owner no longer needs any record with seq < `seq`
  // (each such record was flushed, or superseded by a newer DURABLE record of
  // the same key). Deletes the sealed segments that hold only such records.
  void release_below(std::uint64_t seq);

  // retire: deletes every segment, active included, and closes the journal;
  // later appends fail. For the owner's clean shutdown with nothing dirty.
  absl::Status retire();

  ReplayStats replay_stats() const { return replay_stats_; }

  JournalStats stats() const;

  const std::string& path() const { return path_; }
  const JournalOptions& options() const { return options_; }

 private:
  // timed_fdatasync: ::fdatasync, timed into options_.fsync_latency when set.
  int timed_fdatasync(int fd) const;

  struct Segment {
    std::uint64_t number = 0;
    std::string path;
    std::uint64_t max_seq = 0;  // largest seq in it, checkpoints included (0: no records)
    std::uint64_t bytes = 0;
    std::uint64_t data_records = 0;  // put/erase records in it
    TimePoint first_data{};          // active segment: when its first data record was written
  };

  Journal(std::string path, JournalOptions options);

  std::string segment_path(std::uint64_t number) const;

  // lock_path: the exclusive flock on "<path>.lock" (see the essay).
  absl::Status lock_path();

  // Replays the journal (see "Replay" in the essay); runs before the Journal
  // is shared.
  absl::Status replay(const ReplayFn& on_record);

  // Creates the next segment, starting with a checkpoint (mark, seq) when
  // mark > 0, and makes it active. Called by open() and by the leader
  // (io_busy_ held) when rotating.
  absl::Status start_segment(std::uint64_t mark, std::uint64_t seq);

  // One group commit; called with mu_ held and io_busy_ false. want_sync:
  // the caller needs durability (wait_durable); write_buffered() does not,
  // so under kEveryWrite its batch is written but durable_seq_ stays until a
  // later commit fdatasyncs.
  void lead(MutexLock& l, bool want_sync) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // kEveryInterval: fdatasync whatever was written since the last sync, every
  // fsync_interval of real time.
  void sync_loop();

  const std::string path_;
  const JournalOptions options_;
  const std::shared_ptr<Clock> clock_;
  std::string dir_;
  ReplayStats replay_stats_;  // written by open() only
  std::thread syncer_;

  mutable Mutex mu_;
  CondVar cv_;
  // Guarded by mu_. fd_ and active_ are not annotated: the thread that set
  // io_busy_ (a leader or the syncer) owns them without holding mu_.
  std::string buf_ ABSL_GUARDED_BY(mu_);  // encoded records not yet handed to a leader
  std::uint64_t buf_records_ ABSL_GUARDED_BY(mu_) = 0;  // data records in buf_
  std::uint64_t buf_mark_ ABSL_GUARDED_BY(mu_) = 0;     // newest checkpoint mark in buf_ or earlier
  // Records + checkpoints enqueued since open, and of those, how many write()
  // returned for.
  std::uint64_t enqueued_entries_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t written_entries_ ABSL_GUARDED_BY(mu_) = 0;
  // Largest checkpoint mark enqueued / written (or replayed).
  std::uint64_t enqueued_mark_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t written_mark_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t enqueued_seq_ ABSL_GUARDED_BY(mu_) = 0;  // last seq handed out
  std::uint64_t written_seq_ ABSL_GUARDED_BY(mu_) = 0;   // last seq write() returned for
  std::uint64_t synced_seq_ ABSL_GUARDED_BY(mu_) = 0;    // last seq known fdatasynced
  std::uint64_t durable_seq_ ABSL_GUARDED_BY(mu_) = 0;   // last seq wait_durable() may report
  bool io_busy_ ABSL_GUARDED_BY(mu_) = false;            // a leader/syncer owns fd_ and active_
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status broken_ ABSL_GUARDED_BY(mu_);  // sticky I/O error
  int fd_ = -1;
  int lock_fd_ = -1;  // holds the flock on "<path>.lock"
  Segment active_;
  std::deque<Segment> sealed_ ABSL_GUARDED_BY(mu_);  // oldest first
  std::uint64_t next_number_ = 1;
  JournalStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_JOURNAL_H_
