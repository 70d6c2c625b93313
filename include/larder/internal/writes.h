// SPDX-License-Identifier: Apache-2.0
//
// Writes<K, V>: a cache's write path: put, erase, invalidate, invalidate_all,
// the per-key turns and the write-back. The only part that includes
// write_back.h (and through it journal.h).
//
// Invalidation: invalidate/put/erase first *supersede* the key's flight in
// progress, then write the store. A flight publishes its result into the
// store only under its publish mutex and only if not superseded (loads.h), so
// either the publish happened before the supersede (and this store write
// follows it) or it never happens. invalidate_all supersedes every flight in
// progress, then clears the store. This is a per-flight generation: the
// flight's generation is "current" until a write to its key bumps it.
//
// Turns. Every put/erase of a key in kWriteThrough and kWriteBack first takes
// the key's turn (key_turns.h): a FIFO ticket per key, held across the
// system-of-record half (Writer::write, or WriteBack::put, which fixes the
// order the flusher will write in) and the store half. Same-key writes are
// therefore applied to the system of record and to the store in one order,
// and the cache ends with the value the system of record got last.
// Alternatives rejected: a striped mutex across the Writer call (a larder
// lock around user code, and it stalls unrelated keys of the stripe); a
// per-key generation checked before the store update (it orders the store
// but lets two Writer calls of one key overlap, so the system of record's
// order is unknown).
//
// Write-back (kWriteBack) composes internal::WriteBack (write_back.h: the
// dirty set, flusher, retries, backpressure, journal). put = turn, then
// WriteBack::put (acknowledged: journaled; or refused, cache unchanged), then
// the store. Reads consult the dirty set BEFORE the store (dirty_value): the
// store may have evicted a dirty key, and between a put's two halves it still
// holds the older value. A clean key costs one lock-free filter probe
// (WriteBack::may_be_dirty), so the hit path takes no write-back lock unless
// the key (or one sharing its filter slot) is dirty.
//
//   read(k):  dirty?  --yes-->  pending put: its value   pending erase: NotFound
//               | no
//               v
//             store -> (fresh / stale / load: freshness.h)
//
// invalidate(k) drops only the cached copy; a pending write of k stays and
// reads keep answering it. erase(k) queues a delete behind k's earlier puts.
//
// After the system-of-record half succeeded, the write is done: a store
// failure is not reported (store_after_write, drop_after_write); the old
// copy's drop is deferred instead (recovery.h).
//
// Thread-safety: every method may be called concurrently, except
// stop_write_back (~Cache only).
#ifndef LARDER_INTERNAL_WRITES_H_
#define LARDER_INTERNAL_WRITES_H_

#include <memory>
#include <optional>
#include <span>
#include <utility>

#include "absl/status/status.h"
#include "larder/internal/cache_state.h"
#include "larder/internal/invoke.h"
#include "larder/internal/key_turns.h"
#include "larder/internal/recovery.h"
#include "larder/internal/write_back.h"
#include "larder/stats.h"
#include "larder/writer.h"

namespace larder::internal {

template <class K, class V>
class Writes {
 public:
  Writes(CacheState<K, V>& s, Recovery<K, V>& recovery) : s_(s), recovery_(recovery) {
    const CacheOptions<K, V>& o = s_.opt;
    turns_ = std::make_unique<KeyTurns<K>>();
    if (o.write_mode == WriteMode::kWriteBack) {
      // Last: the flusher starts (and replays the journal) at once.
      const WriteBackOptions<K>& w = o.write_back;
      wb_ = std::make_unique<WriteBack<K, V>>(
          o.writer, WriteBackConfig<K>{.delay = w.delay,
                                       .max_batch = w.batch,
                                       .max_dirty = w.max_dirty,
                                       .backpressure_wait = w.wait,
                                       .journal_path = w.journal,
                                       .fsync = w.fsync,
                                       .fsync_interval = w.fsync_interval,
                                       .journal_segment_bytes = w.journal_segment_bytes,
                                       .retry_base = w.retry_base,
                                       .retry_max = w.retry_max,
                                       .clock = s_.fresh.clock(),
                                       .on_error = w.on_error,
                                       .journal_segment_age = w.journal_segment_age,
                                       .before_clean =
                                           [state = &s_](std::span<const K> keys) {
                                             for (const K& k : keys) state->flights.supersede(k);
                                           },
                                       .flush_latency = s_.latency.flush_or_null(),
                                       .fsync_latency = s_.latency.fsync_or_null()});
      // Loads do not store what they read while a key is dirty (loads.h).
      s_.dirty_now = [wb = wb_.get()](const K& key) { return wb->is_dirty(key); };
    }
  }

  // journalable: whether K and V have a larder::Codec (a journal needs them).
  static constexpr bool kJournalable = WriteBack<K, V>::kJournalable;

  // write_back: whether reads must consult dirty_value first.
  bool write_back() const { return wb_ != nullptr; }

  // dirty_value: for a key the write-back has not written yet, what a read
  // must see: optional(value) for a pending put, optional(nullopt) for a
  // pending erase; nullopt when the key is not dirty (read the store). Only
  // when write_back().
  std::optional<std::optional<V>> dirty_value(const K& key) {
    if (!wb_->may_be_dirty(key)) return std::nullopt;
    std::optional<std::optional<V>> p = wb_->pending(key);
    if (p) {
      if (*p) {
        s_.counters.hits.add();
      } else {
        s_.counters.misses.add();
      }
    }
    return p;
  }

  absl::Status put(const K& key, V value) {
    if (s_.opt.write_mode == WriteMode::kNone) return put_local(key, std::move(value));
    // The key's turn orders this put against other puts/erases of key:
    // their Writer calls never overlap, and the store sees them in the
    // order the system of record did. No lock is held while it waits or
    // while the Writer runs (key_turns.h).
    auto turn = turns_->acquire(key);
    if (!turn) return reentrant_write();
    return put_in_turn(key, std::move(value));
  }

  // compute: key's turn (in every mode), then read = the current value
  // (StatusOr<optional<V>>), then fn(current), then put or erase in the same
  // turn. Concurrent compute/put/erase of key wait for the turn (in kNone only
  // compute does: there put/erase take no turn).
  template <class Read, class Fn>
  absl::StatusOr<std::optional<V>> compute(const K& key, Read&& read, Fn& fn) {
    auto turn = turns_->acquire(key);
    if (!turn) return reentrant_write();
    absl::StatusOr<std::optional<V>> cur = read();
    if (!cur.ok()) return cur.status();
    std::optional<V> next;
    absl::Status thrown = call_user("compute function", [&] {
      next = fn(*std::move(cur));
      return absl::OkStatus();
    });
    if (!thrown.ok()) return thrown;
    absl::Status st = next ? put_in_turn(key, *next) : erase_in_turn(key);
    if (!st.ok()) return st;
    return next;
  }

 private:
  // put_in_turn: put() with key's turn held (or no turn needed: kNone).
  absl::Status put_in_turn(const K& key, V value) {
    switch (s_.opt.write_mode) {
      case WriteMode::kWriteThrough: {
        const std::pair<K, V> kv(key, value);
        absl::Status st = call_user("writer", [&] {
          return s_.opt.writer.write(std::span<const std::pair<K, V>>(&kv, 1));
        });
        if (!st.ok()) {
          s_.counters.write_failures.add();
          return st;  // the cache is left as it was
        }
        s_.counters.writes.add();
        return store_after_write(key, std::move(value));
      }
      case WriteMode::kWriteBack: {
        absl::Status st = wb_->put(key, value);
        if (!st.ok()) {
          // kResourceExhausted (backpressure) and kFailedPrecondition
          // (shutting down): nothing changed. A journal error (kDataLoss) may
          // leave the value dirty (to be written, but not crash-safe): drop the
          // cached copy so the store cannot hold a value older than the
          // system of record will; reads are answered by the write-back.
          if (st.code() != absl::StatusCode::kResourceExhausted &&
              st.code() != absl::StatusCode::kFailedPrecondition) {
            (void)invalidate(key);
          }
          return st;
        }
        return store_after_write(key, std::move(value));
      }
      case WriteMode::kNone:
        break;
    }
    return put_local(key, std::move(value));
  }

  // erase_in_turn: erase() with key's turn held (or none needed).
  absl::Status erase_in_turn(const K& key) {
    if (!s_.opt.writer.erase) return invalidate(key);
    if (s_.opt.write_mode == WriteMode::kWriteBack) {
      // Queued behind every earlier put of key (the flusher calls
      // writer.erase); a pending value can never be written after it.
      absl::Status st = wb_->erase(key);
      if (!st.ok()) return st;  // nothing changed (see put)
      return drop_after_write(key);
    }
    absl::Status st =
        call_user("writer", [&] { return s_.opt.writer.erase(std::span<const K>(&key, 1)); });
    if (!st.ok()) {
      s_.counters.write_failures.add();
      return st;
    }
    s_.counters.writes.add();
    return drop_after_write(key);
  }

 public:
  absl::Status erase(const K& key) {
    // Without writer.erase there is no delete to order: drop the cached copy
    // (in kWriteBack a pending put of key stays pending and is written).
    if (!s_.opt.writer.erase) return invalidate(key);
    // kNone with writer.erase takes the turn too: the Writer calls of one key
    // never overlap.
    auto turn = turns_->acquire(key);
    if (!turn) return reentrant_write();
    return erase_in_turn(key);
  }

  // invalidate: drops key's cached copy. When the store fails, the drop is
  // deferred (recovery.h): key is not served from the store until it is
  // re-applied, and the store's error is returned.
  absl::Status invalidate(const K& key) {
    return change(key, [&] { return s_.store->erase(key); });
  }

  absl::Status invalidate_all() {
    s_.flights.supersede_all();
    if (s_.negative) s_.negative->clear();
    if (s_.refresh_paused) s_.refresh_paused->clear();
    const auto mark = recovery_.mark();
    absl::Status st = s_.store->clear();
    if (st.ok()) {
      recovery_.settle_all(mark);
    } else if (st.code() != absl::StatusCode::kUnimplemented) {
      s_.counters.store_errors.add();
      recovery_.defer_clear();
    }
    return st;
  }

  // flush: the write-back's flush(); OK at once in the other modes.
  absl::Status flush() { return wb_ != nullptr ? wb_->flush() : absl::OkStatus(); }

  // stop_write_back: drains and stops the write-back (its destructor: flush
  // with retries, report leftovers to write_back.on_error). ~Cache only, before
  // the gate closes: nothing else may run concurrently.
  void stop_write_back() { wb_.reset(); }

  // add_stats: the write-back's counters into st.
  void add_stats(CacheStats& st) const {
    if (wb_ == nullptr) return;
    const WriteBackStats w = wb_->stats();
    st.writes += w.writes;
    st.write_failures += w.write_failures;
    st.dirty = w.dirty;
    st.flushes = w.flushes;
    st.write_coalesced = w.coalesced;
    st.write_rejected = w.rejected;
    st.journal_replayed = w.replayed;
    st.journal_bad_tails = w.replay_torn + w.replay_corrupt;
  }

  WriteBack<K, V>* write_back_queue() { return wb_.get(); }
  const WriteBack<K, V>* write_back_queue() const { return wb_.get(); }

 private:
  // reentrant_write: a put/erase of key from inside the Writer call that
  // holds key's turn (on this thread): waiting for the turn would wait for
  // itself forever.
  static absl::Status reentrant_write() {
    return absl::FailedPreconditionError(
        "Cache::put/erase of a key from inside the Writer call writing that key (on the same "
        "thread) would deadlock on the key's turn; nothing was changed");
  }

  // put_local: caches value (a change: Store::put). When the store fails,
  // its old copy may remain: the drop is deferred.
  absl::Status put_local(const K& key, V value) {
    return change(key, [&] {
      const auto t0 =
          s_.latency.sample() ? CacheLatency::Steady::now() : CacheLatency::Steady::time_point{};
      absl::Status st = s_.store->put(key, s_.fresh.make_entry(std::move(value), s_.fresh.now()));
      CacheLatency::record(s_.latency.store_put, t0);
      return st;
    });
  }

  // change: a store write that replaces or drops key's cached copy: flights
  // in progress superseded first (they must not publish after it), key's
  // markers forgotten; when the store fails the drop is deferred.
  template <class StoreWrite>
  absl::Status change(const K& key, StoreWrite store_write) {
    s_.flights.supersede(key);
    s_.forget(key);
    const auto mark = recovery_.mark();
    absl::Status st = store_write();
    if (st.ok()) {
      recovery_.settle(key, mark);
    } else {
      s_.counters.store_errors.add();
      recovery_.defer(key);
    }
    return st;
  }

  // store_after_write: the store's half of a put whose system-of-record half
  // (Writer or write-back) succeeded. The write is done, so this returns OK.
  // When the store fails, the old value must not stay cached: it is dropped
  // now, or the drop is deferred (put_local/invalidate remember the key) and
  // counted in invalidations_deferred.
  absl::Status store_after_write(const K& key, V value) {
    if (!put_local(key, std::move(value)).ok()) (void)invalidate(key);
    return absl::OkStatus();
  }

  // drop_after_write: the store's half of an erase whose system-of-record
  // half succeeded: OK, the drop deferred when the store fails.
  absl::Status drop_after_write(const K& key) {
    (void)invalidate(key);
    return absl::OkStatus();
  }

  CacheState<K, V>& s_;
  Recovery<K, V>& recovery_;
  std::unique_ptr<KeyTurns<K>> turns_;   // per-key write order (compute in every mode)
  std::unique_ptr<WriteBack<K, V>> wb_;  // kWriteBack; reset by stop_write_back()
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_WRITES_H_
