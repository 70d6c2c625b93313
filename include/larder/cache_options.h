// SPDX-License-Identifier: Apache-2.0
//
// CacheOptions<K, V>: how a Cache<K, V> behaves (cache.h), with its two
// grouped parts, WriteBackOptions<K> (CacheOptions::write_back) and
// NegativeCacheOptions (CacheOptions::negative). Plain aggregates: every field
// has a written-out default, and the fields are in order of how often a
// service sets them, so designated initializers name only what they change:
//
//   larder::CacheOptions<int, User> o{.ttl = std::chrono::seconds(30),
//                                     .loader = load_user,
//                                     .negative = {.ttl = std::chrono::seconds(5)}};
//
// Cache's constructor validates them and throws std::invalid_argument naming
// the field. Included by cache.h; include it alone to declare options in a
// file that does not construct the Cache.
#ifndef LARDER_CACHE_OPTIONS_H_
#define LARDER_CACHE_OPTIONS_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "larder/clock.h"
#include "larder/executor.h"
#include "larder/internal/fsync_policy.h"
#include "larder/load_guard.h"
#include "larder/scheduler.h"
#include "larder/stats.h"
#include "larder/store.h"
#include "larder/writer.h"

namespace larder {

// FsyncPolicy: when the write-back journal forces its records to disk
// (WriteBackOptions::fsync). What an acknowledged put survives:
//
//   policy          process crash (SIGKILL, abort)   machine crash (power loss, panic)
//   kEveryWrite     yes                              yes: fdatasync before put returns
//                                                    (group commit: concurrent puts share one)
//   kEveryInterval  yes                              all but the last fsync_interval
//   kNever          yes                              whatever the OS had written back
using FsyncPolicy = internal::FsyncPolicy;

// WriteBackOptions: CacheOptions::write_back, used by WriteMode::kWriteBack
// only. A plain aggregate; fields in order of how often they are set.
template <class K>
struct WriteBackOptions {
  // Longest time (Clock time) a key stays dirty before the flusher writes it.
  // 0: as soon as the flusher gets to it.
  std::chrono::milliseconds delay{100};
  // Journal path prefix (files "<path>.NNNNNNNNNNNN" in an existing
  // directory); every put is appended before it returns, and the journal is
  // replayed through the Writer at construction. Needs larder::Codec<K> and
  // larder::Codec<V>. Empty: no journal (acknowledged puts not yet written
  // are lost if the process dies). One Cache per path: the constructor throws
  // std::runtime_error if another (in any process) has it open ("<path>.lock"
  // is flock'ed). Replay after a crash is AT-LEAST-ONCE for the unflushed
  // window (puts written shortly before the crash may come back; checkpoints
  // bound them: with the defaults, at most 512 records when nothing was
  // dirty; see internal/write_back.h), so the Writer must be idempotent: a
  // versioned upsert ("... SET v = $2, version = $3 WHERE version < $3"),
  // never an increment ("SET n = n + $delta").
  std::string journal{};
  // With a journal: when appended records are forced to disk (see
  // FsyncPolicy above for what each survives).
  FsyncPolicy fsync = FsyncPolicy::kEveryWrite;
  // Most dirty keys; a put of a further key waits up to `wait`, then fails
  // with kResourceExhausted. Must be > 0.
  std::size_t max_dirty = 100'000;
  // How long (real time) a put waits for room when max_dirty keys are dirty,
  // before kResourceExhausted. 0: fail at once.
  std::chrono::milliseconds wait{1000};
  // Most keys per Writer::write (or Writer::erase) call. Must be > 0.
  std::size_t batch = 256;
  // Called on the flusher thread, under no lock, with the keys of every
  // failed Writer call and its error (the keys stay dirty and are retried),
  // and from ~Cache with keys it could not write (kAborted; with a journal
  // they are replayed by the next Cache on it). Must not call flush() or the
  // destructor. Failures are also counted (CacheStats::write_failures).
  // Null: counted only.
  std::function<void(std::span<const K>, const absl::Status&)> on_error = nullptr;
  // A failed Writer call is retried after retry_base * 2^(failures-1) (Clock
  // time), capped at retry_max, minus up to half of it at random (jitter).
  // retry_base must be > 0, retry_max >= retry_base.
  std::chrono::milliseconds retry_base{100};
  std::chrono::milliseconds retry_max{30'000};
  // fsync = kEveryInterval: real time between fdatasyncs. Must be > 0.
  std::chrono::milliseconds fsync_interval{1000};
  // The journal is a chain of segment files; the active one is sealed and a
  // new one started once it holds journal_segment_bytes (must be > 0), or
  // once its first record is journal_segment_age old (Clock time; 0: by size
  // only). Sealed segments whose records were all written are deleted.
  std::size_t journal_segment_bytes = std::size_t{64} << 20;
  std::chrono::milliseconds journal_segment_age{std::chrono::minutes(1)};
};

// NegativeCacheOptions: CacheOptions::negative: remembering that the loader
// found nothing, so a missing key does not reach the database on every call.
struct NegativeCacheOptions {
  // Remember a loader's NotFound this long (in this process). 0: off.
  std::chrono::milliseconds ttl{0};
  // Most keys remembered as NotFound at once; past it, new NotFound answers
  // are not remembered. Must be > 0 when ttl > 0.
  std::size_t max_entries = 10'000;
};

// CacheOptions: a plain aggregate; every field has a default (written out, so
// designated initializers that skip fields compile warning-free). Fields are
// in order of how often a service sets them; the write-back and
// negative-caching knobs are grouped in their own structs. Cache's
// constructor validates them and throws std::invalid_argument naming the
// field.
template <class K, class V>
struct CacheOptions {
  // Fresh this long after a load or put. Must be > 0.
  // Like every duration of these options except load_timeout, at most 50
  // years (longer spans would overflow the clock's time points).
  std::chrono::milliseconds ttl{std::chrono::minutes(1)};
  // After ttl, served stale this long while one background refresh runs.
  // 0: off (an entry past ttl is loaded in the caller).
  std::chrono::milliseconds stale_while_revalidate{0};
  // After ttl, kept this long as the answer when the loader fails. 0: off.
  std::chrono::milliseconds stale_if_error{0};
  // The bound loader, used by get(key) and, without batch_loader, by
  // get_many(keys) key by key: (const K&) -> V | absl::StatusOr<V>; may throw
  // (kInternal with what()). Null: get(key) is kFailedPrecondition; the
  // per-call get_or_load(key, loader) works either way. Without loader but
  // with batch_loader, get(key) calls batch_loader with the one key.
  std::function<absl::StatusOr<V>(const K&)> loader = nullptr;
  // The bound batch loader, used by get_many(keys): the keys to load ->
  // their values (keys it leaves out are NotFound).
  std::function<absl::StatusOr<absl::flat_hash_map<K, V>>(std::span<const K>)> batch_loader =
      nullptr;
  WriteMode write_mode = WriteMode::kNone;
  // kWriteThrough and kWriteBack need writer.write; erase() uses writer.erase
  // when set (without it, erase() only drops the key from the cache).
  Writer<K, V> writer{};
  // kWriteBack: delay, journal, backpressure, retries (see WriteBackOptions).
  WriteBackOptions<K> write_back{};
  // Negative caching (see NegativeCacheOptions). Off by default.
  NegativeCacheOptions negative{};
  // Each entry's ttl is ttl * (1 + u), u uniform in [-ttl_jitter, +ttl_jitter].
  // In [0, 1); 0: no jitter.
  double ttl_jitter = 0.0;
  // Past refresh_ahead * ttl, a hit also starts one background refresh.
  // In [0, 1); 0: off.
  double refresh_ahead = 0.0;
  // With a stale value to fall back on, a caller waits at most this long
  // (Clock time: a ManualClock must be advanced past it) for a load, then gets
  // the stale value; the load goes on in the background and its result is
  // stored. 0: off (wait for the load).
  std::chrono::milliseconds load_timeout{0};
  // Cross-process single-flight (load_guard.h). Null: in-process only.
  std::shared_ptr<LoadGuard<K>> load_guard = nullptr;
  // The time source, set once for the cache and its store. Null: the store's
  // clock (Store::clock()), or system_clock() when the store has none. Set
  // while the store reads another clock: the constructor throws
  // std::invalid_argument (make_local_cache / make_tiered_cache hand this
  // clock to the stores they build).
  std::shared_ptr<Clock> clock = nullptr;
  // Where background refreshes run. Null: default_executor().
  std::shared_ptr<Executor> executor = nullptr;
  // Called (on an Executor thread, under no lock) when a background refresh
  // fails; exceptions it throws are swallowed. Failures are also counted in
  // CacheStats::refresh_failures.
  std::function<void(const K&, const absl::Status&)> on_refresh_error = nullptr;
  // Stale-if-error: after a failed load was answered with the stale value, the
  // stale value is served as fresh this long (never past its stale_until)
  // before the loader is asked again, so a failing source is not hammered on
  // every call. Likewise after a background refresh failed: hits keep the
  // value they have and no new refresh of that key starts for this long.
  // 0: ask the loader on every call.
  std::chrono::milliseconds error_backoff{std::chrono::seconds(1)};
  // Most keys remembered one by one whose old copy the store could not drop
  // (see "Auto-recovery" in the notes above). Past it, every key is treated
  // as possibly stale until one Store::clear() succeeds. Must be > 0.
  std::size_t max_pending_invalidations = 10'000;
  // Where time-driven work runs when no call comes along: auto-recovery's
  // retries (see "Auto-recovery" above). It must read the same Clock as the
  // cache. null: default_scheduler() with the system clock; none with any
  // other clock (then calls drive the retries; tests may pass a
  // ManualScheduler instead).
  std::shared_ptr<Scheduler> scheduler = nullptr;
  // How late a store write that failed may still be applied by the store (a
  // SET that timed out in a stalled Redis or a slow network). A key whose
  // store write failed is not served from the store for this long, and its
  // old copy is dropped once when the store answers and once more after it,
  // so a late write cannot revive an old value for the rest of its ttl.
  // 0: no hold (a late write may then survive until its stale_until). Clock
  // time; must be >= 0.
  std::chrono::milliseconds late_write_window{std::chrono::seconds(2)};
  // Metrics (metrics.h): the cache's name, its cache="<name>" label (empty:
  // "default"); and whether latencies are recorded (load, store get/put
  // sampled, write-back flush, journal fsync). Counters and gauges are read
  // from the cache when metrics are collected and cost nothing here.
  std::string name{};
  bool record_latency = true;
};

}  // namespace larder

#endif  // LARDER_CACHE_OPTIONS_H_
