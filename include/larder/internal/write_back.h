// SPDX-License-Identifier: Apache-2.0
//
// WriteBack<K, V>: the write-back engine — the dirty set, its flusher
// thread and (optionally) its journal. Cache<K, V> composes it for
// WriteMode::kWriteBack; it is usable and tested alone.
//
// put()/erase() record the newest state of a key in the dirty set (and, with a
// journal, append it durably) and return without calling the Writer. A
// background flusher writes dirty keys through Writer::write / Writer::erase
// no later than `delay` after they became dirty, at most `max_batch` keys per
// call, only the newest value of each key (coalescing), never two writes of one
// key at once or out of order. Failed batches are retried with exponential
// backoff and jitter; failing keys stay dirty, are counted and reported to
// `on_error`, and are never dropped. pending(k) answers reads from the dirty
// set, so a cache whose store evicted k still reads its own write.
//
// How it differs from the textbook write-back cache: acknowledged writes are
// not lost when the process dies, if a journal is configured (see
// internal/journal.h for the file format and fsync policies), and a writer
// that keeps failing fills the dirty set until put() pushes back
// (kResourceExhausted) instead of growing without bound or dropping data.
//
// Thread-safety: every public method may be called concurrently, except that
// the destructor must not race other calls. The Writer, the codecs and
// on_error run without any larder lock held; the Writer and on_error run on
// the flusher thread (or, for the codecs, on the caller's). They must not call
// flush() or poll() on this object (that would wait on themselves).
//
// Example:
//
//   larder::Writer<std::string, int> w{.write = [&](auto batch) { return db.upsert(batch); }};
//   larder::internal::WriteBack<std::string, int> wb(
//       w, {.delay = std::chrono::milliseconds(50), .journal_path = "/var/lib/app/wb"});
//   ABSL_CHECK_OK(wb.put("a", 1));      // durable in the journal, not yet in the db
//   wb.pending("a");                    // optional(optional(1))
//   ABSL_CHECK_OK(wb.flush());          // now in the db
//
// ---------------------------------------------------------------------------
// Design
//
// State, all under one mutex mu_:
//
//   dirty_      K -> Entry{value (nullopt: erase), version, first_unwritten,
//                          jseq, in_flight, snapshot, redirtied, failures, ...}
//   schedule_   (due time, version) -> K   keys waiting for the flusher, by due
//   unwritten_  first_unwritten version -> K   (for flush(): oldest unwritten write)
//   live_jseq_  newest journal seq of each dirty key -> K  (for journal compaction)
//
// Every put/erase takes a fresh global `version`. An Entry is in the dirty set
// from its first unwritten mutation until a write covering its newest version
// succeeds. Its life:
//
//            put/erase                     flusher takes it
//   (clean) ----------> DIRTY (scheduled) -----------------> IN FLIGHT (snapshot = version)
//      ^                  ^   ^  put: value replaced,             |   put: value replaced,
//      |                  |   |  coalesced++                      |   redirtied = true
//      |  write ok and    |   +-----------------------------------+ write failed:
//      |  !redirtied      |     rescheduled at now + backoff(failures)
//      +------------------+----------------------------------------+
//                         write ok but redirtied: rescheduled at redirty_time + delay
//
// While a key is in flight the flusher never takes it again, so one key is
// never written twice concurrently, and its writes reach the Writer in put
// order; the newest value wins because only the newest is ever written.
//
// The flusher thread runs passes. A pass repeatedly takes a batch (up to
// max_batch keys, each at most once per pass) from the front of schedule_
// while due <= now (under backpressure: due <= now + delay, i.e. the delay is
// waived), or, when a flush() is pending, every key whose first_unwritten
// version is <= the flush's target (delay and backoff waived). It drops mu_,
// waits for the batch's journal records to be durable (so the system of record
// never holds a value the journal could lose: replay never moves a key
// backwards), calls Writer::write for the puts and Writer::erase for the
// erases, retakes mu_ and completes each key as in the diagram. on_error runs
// after that, unlocked.
//
// Time. Deadlines are Clock instants (ManualClock in tests), but a condition
// variable can only wait in real time. The flusher therefore waits
//   min(due_of_first_key - clock.now(), idle_poll)
// of REAL time and re-reads the Clock when it wakes: with the SystemClock it
// wakes at the deadline; with a ManualClock it notices an advance within
// idle_poll. Tests that must not wait at all call poll(): it wakes the
// flusher and returns once a complete pass that started after the call has
// finished, so "advance(99ms); poll(); expect no write; advance(1ms); poll();
// expect the write" is deterministic, with no sleep. Backpressure waits and
// the destructor's retry pauses are real time as well (a put blocked on a full
// dirty set must not depend on somebody advancing a test clock).
//
// flush() takes a ticket: target = the newest version so far. It returns OK
// once no dirty key has first_unwritten <= target; otherwise, after the pass
// that served it, the error that pass saw. One attempt per key per flush:
// flush() never loops forever on a failing Writer.
//
// Journal. put() encodes the key and value (user code, unlocked), then under
// mu_ updates the entry and enqueues the record (so journal order equals
// dirty-set order), then waits for the group commit unlocked. Construction
// replays the journal into the dirty set (due at once), so the flusher writes
// it through the Writer with the usual retries. The LOW-WATER MARK
//   L = min(newest jseq over dirty keys, last enqueued seq + 1)
// says every record below L is acknowledged: its key was written since, or
// has a newer record, enqueued earlier than anything that uses L. (Not "the
// newest seq written": batches complete out of seq order, and a key that
// keeps failing holds L at its record while later keys are written.) It is
// used twice:
//   * Checkpoints. After each batch that moved L the flusher enqueues a
//     checkpoint record "below L is written" and writes it (no fsync: it
//     rides on order, see journal.h); a put appends one to its own group
//     commit when L has moved journal_checkpoint_every records past the last
//     one (a hot key superseding itself moves L between batches). Replay
//     skips records below the newest checkpoint it finds.
//   * Deletion. If the journal has sealed segments, the flusher waits until
//     every record enqueued so far is durable (the superseding ones must be)
//     and releases segments below L. When two or more sealed segments stay
//     pinned (a key failing for a long time) and at most half of their
//     records are still needed, it relogs those keys' newest values so the
//     old segments can go. A put that finds two segments sealed since the
//     last upkeep does this upkeep itself (one thread at a time), so the
//     bound holds while the flusher is stuck in a slow Writer call.
// On destruction with nothing dirty, the journal's files are deleted.
//
// Replay: what comes back after a crash. At-least-once for the unflushed
// window: a crash replays every record at or above the true L (all that was
// not yet written, and whatever follows the oldest such record), plus the
// records acknowledged since the newest checkpoint that reached the file:
// at most journal_checkpoint_every records moved by puts, plus those of the
// batch whose Writer call had returned but whose checkpoint was not yet
// written (a window of microseconds). So with the defaults, a crash with
// nothing dirty replays at most 512 records (none once the flusher has
// checkpointed; it does after every batch), not everything since the last
// clean start. WriteBackStats::replayed counts the records replayed,
// replay_acknowledged those skipped. The Writer must therefore be IDEMPOTENT
// for the window: writing a key's value again must leave the same state.
// Upserts of the full value are; increments are not. Carry a version and
// make the write conditional, e.g. for a view counter:
//
//   // the cached value is {count, version}; version increases on every put
//   INSERT INTO views(page, count, version) VALUES ($1, $2, $3)
//   ON CONFLICT (page) DO UPDATE SET count = EXCLUDED.count, version = EXCLUDED.version
//   WHERE views.version < EXCLUDED.version;
//
// not "UPDATE views SET count = count + $delta", which a replay double-counts.
//
// Costs: put is O(log n) under one mutex (n = dirty keys) plus, with a
// journal, one group-committed append (and, once per journal_checkpoint_every
// records of low-water movement, a 29-byte checkpoint in the same commit);
// each flush batch that moves the mark adds one write() without fsync. One global mutex is the
// simple choice for a write path whose cost is dominated by the journal or the Writer; the read
// path (pending) takes it too, so a Cache asks may_be_dirty(k) first: a lock-free counting filter
// over the dirty keys' hashes (kFilterSlots atomic counters, raised under mu_ before put returns,
// lowered when the key leaves the dirty set), so reads of clean keys never touch mu_.
//
// Where the code is: this header has the interface, the options and the data
// layout; the member definitions (flusher, batches, retries, journal upkeep)
// are in write_back_impl.h, included at the end. The journal's file I/O is
// compiled in larder::core (src/core/journal.cc), and so are WriteBack<std::string,
// std::string> and WriteBack<std::int64_t, std::string> (`extern template`).
#ifndef LARDER_INTERNAL_WRITE_BACK_H_
#define LARDER_INTERNAL_WRITE_BACK_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "larder/clock.h"
#include "larder/codec.h"
#include "larder/internal/absl_compat.h"
#include "larder/internal/invoke.h"
#include "larder/internal/journal.h"
#include "larder/internal/mutex.h"
#include "larder/metric.h"
#include "larder/writer.h"

namespace larder::internal {

// HasCodec: larder::Codec<T> exists and has the codec shape. False (not an
// error) for types without a codec, so WriteBack compiles for them as long
// as no journal is asked for.
template <class T>
concept HasCodec = requires(const T& v, std::string& out, std::string_view in) {
  Codec<T>::encode(v, out);
  { Codec<T>::decode(in) } -> std::same_as<absl::StatusOr<T>>;
};

template <class K>
struct WriteBackConfig {
  // Longest time a key stays dirty before the flusher writes it (Clock time).
  // 0: write as soon as the flusher gets to it.
  std::chrono::milliseconds delay{100};
  // Most keys per Writer::write (and per Writer::erase) call. Must be > 0.
  std::size_t max_batch = 256;
  // Most dirty keys; a put of a new key beyond it waits. Must be > 0.
  std::size_t max_dirty = 100'000;
  // How long such a put waits (real time) before kResourceExhausted. 0: fail at once.
  std::chrono::milliseconds backpressure_wait{1000};
  // Journal path prefix (segments are "<path>.NNNNNNNNNNNN"); empty: no journal.
  // Needs larder::Codec for K and V.
  std::string journal_path{};
  // Journal fsync policy (default kEveryWrite; see internal/journal.h).
  FsyncPolicy fsync = FsyncPolicy::kEveryWrite;
  // kEveryInterval only: real time between fdatasyncs. Must be > 0.
  std::chrono::milliseconds fsync_interval{1000};
  // Journal segment size before rotation. Must be > 0.
  std::size_t journal_segment_bytes = std::size_t{64} << 20;
  // Retry backoff after a failed write: retry_base * 2^(failures-1), capped at
  // retry_max, then reduced by a random fraction in [0, retry_jitter).
  // retry_base must be > 0, retry_max >= retry_base, retry_jitter in [0, 1].
  std::chrono::milliseconds retry_base{100};
  std::chrono::milliseconds retry_max{30'000};
  double retry_jitter = 0.5;
  // Time source for delay and backoff; null: system_clock().
  std::shared_ptr<Clock> clock{};
  // Called (on the flusher thread, unlocked) with the keys of every failed
  // Writer call and its error; also at destruction with keys left unwritten
  // (kAborted). May be empty.
  std::function<void(std::span<const K>, const absl::Status&)> on_error{};
  // Longest real-time wait of the idle flusher before it re-reads the Clock.
  // Must be > 0. See "Time" in write_back.h.
  std::chrono::milliseconds idle_poll{50};
  // Flush attempts made by the destructor before giving up (>= 1).
  int shutdown_flush_attempts = 3;
  // Journal: also seal the active segment once its first record is this old
  // (Clock time), so acknowledged records of a quiet journal are deleted.
  // 0: by size only. Must be >= 0.
  std::chrono::milliseconds journal_segment_age{std::chrono::minutes(1)};
  // Journal: a put appends a checkpoint once the low-water mark has moved this
  // many records past the last one (flush batches append one anyway). Bounds
  // what a crash replays beyond the unflushed records; see "Replay" above.
  // Must be > 0.
  std::uint64_t journal_checkpoint_every = 512;
  // Called on the flusher thread, unlocked, with the keys of a Writer call
  // that succeeded, before they can turn clean (so a reader that finds them
  // clean reads the system of record after this returned). Cache supersedes
  // their loads in progress here: a load that read the system of record
  // before the write must not be stored after it. May be empty.
  std::function<void(std::span<const K>)> before_clean{};
  // Metrics (metric.h): when set, each flush batch's Writer calls are timed
  // into flush_latency and the journal's fdatasyncs into fsync_latency. Both
  // must outlive the WriteBack. Null: not timed.
  LatencyHistogram* flush_latency = nullptr;
  LatencyHistogram* fsync_latency = nullptr;
};

// WriteBackStats: counters since construction (dirty: now).
struct WriteBackStats {
  std::uint64_t puts = 0;                 // put() calls accepted
  std::uint64_t erases = 0;               // erase() calls accepted
  std::uint64_t writes = 0;               // keys written to the system of record (put or erase)
  std::uint64_t write_failures = 0;       // Writer calls that failed (or threw)
  std::uint64_t dirty = 0;                // keys not yet written, now
  std::uint64_t flushes = 0;              // Writer calls that succeeded
  std::uint64_t coalesced = 0;            // mutations absorbed by a later one to the same key
  std::uint64_t rejected = 0;             // puts refused with kResourceExhausted
  std::uint64_t replayed = 0;             // journal records applied at construction (not covered
                                          // by a checkpoint: see replay_acknowledged)
  std::uint64_t replay_torn = 0;          // journal segments that ended in a torn record
  std::uint64_t replay_corrupt = 0;       // journal segments cut short by a corrupt record
  std::uint64_t replay_undecodable = 0;   // valid records whose key/value did not decode
  std::uint64_t relogged = 0;             // records re-appended to free old journal segments
  std::uint64_t dropped_at_shutdown = 0;  // keys still dirty when the destructor gave up
  JournalStats journal;                   // zeros without a journal
  std::uint64_t replay_acknowledged = 0;  // journal records skipped at construction: a
                                          // checkpoint said they were already written
};

template <class K, class V, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
class WriteBack {
 public:
  using Options = WriteBackConfig<K>;
  static constexpr bool kJournalable = HasCodec<K> && HasCodec<V>;

  // Validates options, opens and replays the journal (if any) into the dirty
  // set, and starts the flusher thread.
  // Throws std::invalid_argument for bad options (naming the field), or when
  // journal_path is set and K or V has no larder::Codec; std::runtime_error
  // when the journal cannot be opened (I/O).
  WriteBack(Writer<K, V> writer, Options options)
      : writer_(std::move(writer)),
        options_(std::move(options)),
        clock_(clock_or_default(options_.clock)),
        rng_(std::random_device{}()) {
    validate();
    if (!options_.journal_path.empty()) open_journal();
    flusher_ = std::thread([this] { run(); });
  }

  WriteBack(const WriteBack&) = delete;
  WriteBack& operator=(const WriteBack&) = delete;

  // Drains: flushes (up to shutdown_flush_attempts times, pausing the retry
  // backoff in real time between attempts), stops the flusher, and reports
  // any key still dirty to on_error with kAborted (counted in
  // dropped_at_shutdown; with a journal they are still in it and will be
  // replayed by the next WriteBack on the same path). With nothing left
  // dirty the journal's segments are deleted (not its empty .lock file).
  ~WriteBack();

  // put: records `value` as k's newest state and returns without calling the
  // Writer. With a journal, returns only once the record is durable.
  // Errors: kResourceExhausted when the dirty set stayed full for
  // backpressure_wait; the journal's error (kDataLoss) when it could not be
  // appended — the value is then still dirty and may be written, but is not
  // crash-safe; kFailedPrecondition after destruction began.
  // Cost: O(log dirty) under the mutex, plus the journal's group commit.
  absl::Status put(const K& key, V value) {
    return mutate(key, std::optional<V>(std::move(value)));
  }

  // erase: records "k deleted", ordered after every earlier put of k. The
  // flusher calls Writer::erase (when it is empty, the pending put is simply
  // dropped). Errors as for put().
  absl::Status erase(const K& key) { return mutate(key, std::nullopt); }

  // pending: what a read of k must see that the system of record may not have
  // yet: nullopt when k is not dirty; optional(nullopt) when an erase is
  // pending; optional(value) when a put is. O(1) under the mutex.
  std::optional<std::optional<V>> pending(const K& key) const {
    MutexLock l(&mu_);
    auto it = dirty_.find(key);
    if (it == dirty_.end()) return std::nullopt;
    return std::optional<std::optional<V>>(std::in_place, it->second.value);
  }

  // is_dirty: whether key has a write not yet written (pending() without
  // the copy). Lock-free false for most clean keys.
  bool is_dirty(const K& key) const {
    if (!may_be_dirty(key)) return false;
    MutexLock l(&mu_);
    return dirty_.contains(key);
  }

  // may_be_dirty: false when key is certainly not dirty now; true when it may
  // be (then ask pending()). Lock-free: one hash and one atomic load of a
  // counting filter (kFilterSlots counters indexed by the key's hash, bumped
  // when a key enters the dirty set and dropped when it leaves). A reader that
  // sees false after a put of key returned (in any thread it synchronises
  // with) cannot happen: the counter is raised, under mu_, before put returns.
  // False positives (another dirty key in the same slot) only cost a
  // pending() call.
  bool may_be_dirty(const K& key) const {
    if (dirty_count_.load(std::memory_order_acquire) == 0) return false;
    return filter_slot(key).load(std::memory_order_acquire) != 0;
  }

  // flush: returns OK once every put/erase acknowledged before the call is in
  // the system of record; otherwise the Writer's (or the journal's) error from
  // the attempt it made for this flush (each dirty key is tried once; delay
  // and backoff are waived). May run concurrently with puts, which it does not
  // wait for. kFailedPrecondition after destruction began.
  absl::Status flush();

  // poll: test hook. Wakes the flusher and returns once a complete pass that
  // began after the call has finished (everything due at the Clock's current
  // time was attempted once). Never call it from the Writer or on_error.
  void poll() {
    MutexLock l(&mu_);
    if (flusher_exited_) return;
    const std::uint64_t ticket = ++poll_requested_;
    wake_flusher_locked();
    done_cv_.wait(l, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return poll_done_ >= ticket || flusher_exited_;
    });
  }

  // oldest_dirty_age: about how long the longest-waiting scheduled key has
  // been dirty at `now` (its due time minus delay; for a key being retried,
  // since its retry was scheduled); 0 when none waits. For metrics.
  TimePoint::duration oldest_dirty_age(TimePoint now) const {
    MutexLock l(&mu_);
    if (schedule_.empty()) return TimePoint::duration::zero();
    const TimePoint since = schedule_.begin()->first.first - options_.delay;
    return now > since ? now - since : TimePoint::duration::zero();
  }

  // dirty: keys not yet written, now.
  std::size_t dirty() const {
    MutexLock l(&mu_);
    return dirty_.size();
  }

  WriteBackStats stats() const;

  const Options& options() const { return options_; }

 private:
  using Due = std::pair<TimePoint, std::uint64_t>;  // (due time, version tiebreak)

  struct Entry {
    std::optional<V> value;             // nullopt: pending erase
    std::uint64_t version = 0;          // newest mutation
    std::uint64_t first_unwritten = 0;  // oldest version no successful write covers
    std::uint64_t jseq = 0;             // newest journal record (0: none)
    std::uint64_t snapshot = 0;         // version being written (in_flight)
    std::uint64_t redirty_version = 0;  // first version after the snapshot
    TimePoint redirty_time{};
    Due due{};                      // valid when scheduled
    std::uint64_t failed_pass = 0;  // pass in which it last failed
    std::uint32_t failures = 0;     // consecutive failed writes
    bool in_flight = false;
    bool redirtied = false;
    bool scheduled = false;
  };

  struct Batch {
    std::vector<K> put_keys;
    std::vector<std::pair<K, V>> puts;
    std::vector<K> erases;
    std::uint64_t max_jseq = 0;
  };

  void validate() const;

  void open_journal();

  absl::Status mutate(const K& key, std::optional<V> value);

  // Records a mutation (from put/erase or replay). mu_ held.
  void apply_locked(const K& key, std::optional<V> value, std::uint64_t jseq, TimePoint now,
                    TimePoint due) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void set_jseq_locked(const K& key, Entry& e, std::uint64_t jseq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void schedule_locked(const K& key, Entry& e, TimePoint due) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void unschedule_locked(Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Takes up to max_batch keys for the pass `pass_`. mu_ held.
  Batch take_batch_locked(bool flush_mode, std::uint64_t flush_target, TimePoint now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  static constexpr std::string_view kWriterWhat = "write-back: Writer";

  // A throwing on_error must not kill the flusher; the failure is counted.
  void report(std::span<const K> keys, const absl::Status& s) {
    if (keys.empty()) return;
    notify_user(options_.on_error, keys, s);
  }

  // Completes one key of a batch. mu_ held; flusher thread only (uses rng_).
  void complete_locked(const K& key, bool ok, TimePoint now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::chrono::milliseconds backoff_nominal(std::uint32_t failures) const;

  TimePoint::duration backoff_jittered(std::uint32_t failures);

  // Writes one batch, unlocked; then completes it and reports, and returns the
  // first error. Called with mu_ held.
  absl::Status write_batch(MutexLock& l, Batch& b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The journal's low-water mark: every record below it is acknowledged
  // (its key was written since, or has a newer record in the journal). The
  // smallest newest-record seq of the dirty keys; last seq + 1 when none is
  // dirty. mu_ held (every enqueue happens under mu_, so it is stable).
  std::uint64_t low_water_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::uint64_t next = journal_->last_enqueued() + 1;
    return live_jseq_.empty() ? next : std::min(live_jseq_.begin()->first, next);
  }

  // Enqueues a checkpoint at the current low-water mark. mu_ held: the mark
  // and the journal order agree (every superseding record precedes it).
  void checkpoint_locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Journal upkeep after a batch: relog pinned keys, append a checkpoint when
  // the low-water mark moved (written at once, without an fsync: losing it
  // only means replaying more), then release the segments nothing needs.
  // One thread at a time (upkeep_running_): the flusher waits for a put's
  // upkeep to finish; a put skips its upkeep while another runs.
  void maintain_journal_locked(MutexLock& l) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void maintain_journal_once_locked(MutexLock& l) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void wake_flusher_locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++wakes_;
    cv_.notify_all();
  }

  bool work_ready_locked(TimePoint now, std::uint64_t poll_seen, std::uint64_t flush_seen) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The flusher thread.
  void run();

  const Writer<K, V> writer_;
  const Options options_;
  const std::shared_ptr<Clock> clock_;
  std::unique_ptr<Journal> journal_;  // set in the constructor, reset in the destructor

  // Replay counters: written by the constructor only.
  std::uint64_t replayed_ = 0;
  std::uint64_t replay_torn_ = 0;
  std::uint64_t replay_corrupt_ = 0;
  std::uint64_t replay_undecodable_ = 0;
  std::uint64_t replay_acknowledged_ = 0;

  mutable Mutex mu_;
  CondVar cv_;        // wakes the flusher
  CondVar done_cv_;   // flush()/poll() waiters: a pass or a batch finished
  CondVar space_cv_;  // backpressure waiters
  absl::flat_hash_map<K, Entry, Hash, Eq> dirty_ ABSL_GUARDED_BY(mu_);
  std::map<Due, K> schedule_ ABSL_GUARDED_BY(mu_);
  std::map<std::uint64_t, K> unwritten_ ABSL_GUARDED_BY(mu_);
  std::map<std::uint64_t, K> live_jseq_ ABSL_GUARDED_BY(mu_);
  std::uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  // Newest checkpoint mark handed to the journal.
  std::uint64_t checkpoint_sent_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t pass_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t poll_requested_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t poll_done_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t flush_requested_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t flush_done_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t flush_target_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status flush_status_ ABSL_GUARDED_BY(mu_);
  int pressure_waiters_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t wakes_ ABSL_GUARDED_BY(mu_) = 0;  // bumped by every wake_flusher_locked()
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool flusher_exited_ ABSL_GUARDED_BY(mu_) = false;
  // Journal upkeep: sealed segments seen by the last upkeep, and a put's
  // request for a pass because more were sealed since.
  std::size_t upkeep_sealed_ ABSL_GUARDED_BY(mu_) = 0;
  bool upkeep_requested_ ABSL_GUARDED_BY(mu_) = false;
  // Sealed segments left by the last upkeep: a put that finds two more
  // sealed since does the upkeep itself (mutate), so the journal's bound
  // holds even while the flusher is inside a slow Writer call or not
  // scheduled at all.
  std::size_t sealed_after_upkeep_ ABSL_GUARDED_BY(mu_) = 0;
  bool upkeep_running_ ABSL_GUARDED_BY(mu_) = false;
  CondVar upkeep_cv_;  // the flusher waits here for a put's upkeep
  std::uint64_t puts_ ABSL_GUARDED_BY(mu_) = 0, erases_ ABSL_GUARDED_BY(mu_) = 0,
                      writes_ ABSL_GUARDED_BY(mu_) = 0, write_failures_ ABSL_GUARDED_BY(mu_) = 0,
                      flushes_ ABSL_GUARDED_BY(mu_) = 0, coalesced_ ABSL_GUARDED_BY(mu_) = 0,
                      rejected_ ABSL_GUARDED_BY(mu_) = 0, relogged_ ABSL_GUARDED_BY(mu_) = 0,
                      dropped_at_shutdown_ ABSL_GUARDED_BY(mu_) = 0;
  std::mt19937_64 rng_;  // flusher thread only

  // The lock-free dirty filter behind may_be_dirty(): written under mu_, read
  // without it.
  static constexpr std::size_t kFilterSlots = 4096;  // power of two
  std::atomic<std::size_t> dirty_count_{0};
  std::unique_ptr<std::atomic<std::uint32_t>[]> filter_ {
    new std::atomic<std::uint32_t>[ kFilterSlots ]()
  };
  std::atomic<std::uint32_t>& filter_slot(const K& key) const {
    const std::size_t h = Hash{}(key);
    return filter_[(h ^ (h >> 29)) & (kFilterSlots - 1)];
  }

  std::thread flusher_;  // last: starts after everything above is built
};

}  // namespace larder::internal

#include "larder/internal/write_back_impl.h"  // IWYU pragma: export

// The common <K, V> (std::string or std::int64_t keys, std::string values) are
// instantiated once in larder::core (src/core/instances_write_back.cc); other types are
// instantiated where they are used, as usual. Define LARDER_NO_EXTERN_TEMPLATES to instantiate them
// in your own files too, e.g. when those are built with a sanitizer the library was not built with.
#ifndef LARDER_NO_EXTERN_TEMPLATES
namespace larder::internal {
extern template class WriteBack<std::string, std::string>;
extern template class WriteBack<std::int64_t, std::string>;
}  // namespace larder::internal
#endif  // LARDER_NO_EXTERN_TEMPLATES

#endif  // LARDER_INTERNAL_WRITE_BACK_H_
