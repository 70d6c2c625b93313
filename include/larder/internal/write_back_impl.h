// SPDX-License-Identifier: Apache-2.0
//
// WriteBack's member definitions (write_back.h has the interface, the design
// essay and the data layout). Included at the end of write_back.h; not a
// header to include on its own.
//
// What lives here, by concern:
//   * lifetime: validate(), open_journal() (replays the journal through the
//     Writer before the flusher starts), the destructor (flush with retries,
//     leftovers reported to on_error), flush() and stats();
//   * the dirty set: mutate() (journal append, then apply_locked under the
//     mutex; backpressure at max_dirty), the due-time schedule
//     (schedule_locked / unschedule_locked) and the lock-free filter;
//   * the flusher thread: run() waits for work (work_ready_locked), takes a
//     batch of due keys (take_batch_locked: newest value per key, never a key
//     already in flight), writes it without the lock (write_batch), then
//     completes each key (complete_locked: clean, or dirty again with
//     exponential backoff and jitter, backoff_jittered);
//   * the journal's upkeep: checkpoints of the low-water mark
//     (checkpoint_locked) and relogging of still-dirty keys so old segments
//     can be deleted (maintain_journal_locked).
//
// Every definition is `inline`, as it was inside the class: moving them here
// changes where they are read, not how they are compiled.
#ifndef LARDER_INTERNAL_WRITE_BACK_IMPL_H_
#define LARDER_INTERNAL_WRITE_BACK_IMPL_H_

#include "larder/internal/write_back.h"

namespace larder::internal {

template <class K, class V, class Hash, class Eq>
inline WriteBack<K, V, Hash, Eq>::~WriteBack() {
  absl::Status s = flush();
  for (int i = 1; !s.ok() && i < options_.shutdown_flush_attempts; ++i) {
    std::this_thread::sleep_for(backoff_nominal(i));
    s = flush();
  }
  {
    MutexLock l(&mu_);
    closed_ = true;
    stop_ = true;
    wake_flusher_locked();
    space_cv_.notify_all();
  }
  flusher_.join();
  std::vector<K> left;
  for (auto& [k, e] : dirty_) left.push_back(k);
  if (!left.empty()) {
    dropped_at_shutdown_ += left.size();
    report(left, absl::AbortedError(absl::StrCat(
                     "write-back: destroyed with ", left.size(), " keys unwritten (",
                     journal_ ? "kept in the journal for the next start" : "lost: no journal",
                     "); last error: ", s.ToString())));
  } else if (journal_) {
    (void)journal_->retire();
  }
  journal_.reset();
}

template <class K, class V, class Hash, class Eq>
inline absl::Status WriteBack<K, V, Hash, Eq>::flush() {
  MutexLock l(&mu_);
  if (flusher_exited_) return absl::FailedPreconditionError("write-back: stopped");
  const std::uint64_t target = version_;
  for (;;) {
    if (unwritten_.empty() || unwritten_.begin()->first > target) return absl::OkStatus();
    flush_target_ = std::max(flush_target_, target);
    const std::uint64_t ticket = ++flush_requested_;
    wake_flusher_locked();
    done_cv_.wait(l, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return flush_done_ >= ticket || flusher_exited_;
    });
    if (unwritten_.empty() || unwritten_.begin()->first > target) return absl::OkStatus();
    if (flusher_exited_) return absl::FailedPreconditionError("write-back: stopped");
    if (!flush_status_.ok()) return journal_internal::unshared(flush_status_);
  }
}

template <class K, class V, class Hash, class Eq>
inline WriteBackStats WriteBack<K, V, Hash, Eq>::stats() const {
  WriteBackStats s;
  {
    MutexLock l(&mu_);
    s.puts = puts_;
    s.erases = erases_;
    s.writes = writes_;
    s.write_failures = write_failures_;
    s.dirty = dirty_.size();
    s.flushes = flushes_;
    s.coalesced = coalesced_;
    s.rejected = rejected_;
    s.relogged = relogged_;
    s.dropped_at_shutdown = dropped_at_shutdown_;
  }
  s.replayed = replayed_;
  s.replay_torn = replay_torn_;
  s.replay_corrupt = replay_corrupt_;
  s.replay_undecodable = replay_undecodable_;
  s.replay_acknowledged = replay_acknowledged_;
  if (journal_) s.journal = journal_->stats();
  return s;
}
template <class K, class V, class Hash, class Eq>
inline void WriteBack<K, V, Hash, Eq>::validate() const {
  auto bad = [](std::string_view what) {
    throw std::invalid_argument(absl::StrCat("WriteBack: ", av(what)));
  };
  if (!writer_.write) bad("writer.write is empty");
  if (options_.max_batch == 0) bad("max_batch must be > 0");
  if (options_.max_dirty == 0) bad("max_dirty must be > 0");
  if (options_.delay.count() < 0) bad("delay must be >= 0");
  if (options_.backpressure_wait.count() < 0) bad("backpressure_wait must be >= 0");
  if (options_.retry_base.count() <= 0) bad("retry_base must be > 0");
  if (options_.retry_max < options_.retry_base) bad("retry_max must be >= retry_base");
  if (!(options_.retry_jitter >= 0.0 && options_.retry_jitter <= 1.0)) {
    bad("retry_jitter must be in [0, 1]");
  }
  if (options_.idle_poll.count() <= 0) bad("idle_poll must be > 0");
  if (options_.shutdown_flush_attempts < 1) bad("shutdown_flush_attempts must be >= 1");
  if (!options_.journal_path.empty()) {
    if (!kJournalable) {
      bad("journal_path is set but K or V has no larder::Codec (specialise larder::Codec, "
          "or leave journal_path empty)");
    }
    if (options_.journal_segment_bytes == 0) bad("journal_segment_bytes must be > 0");
    if (options_.journal_segment_age.count() < 0) bad("journal_segment_age must be >= 0");
    if (options_.journal_checkpoint_every == 0) bad("journal_checkpoint_every must be > 0");
    if (options_.fsync == FsyncPolicy::kEveryInterval && options_.fsync_interval.count() <= 0) {
      bad("fsync = kEveryInterval needs fsync_interval > 0");
    }
  }
}

template <class K, class V, class Hash, class Eq>
inline void WriteBack<K, V, Hash, Eq>::open_journal() {
  if constexpr (kJournalable) {
    JournalOptions jo{.fsync = options_.fsync,
                      .fsync_interval = options_.fsync_interval,
                      .segment_bytes = options_.journal_segment_bytes,
                      .segment_age = options_.journal_segment_age,
                      .clock = clock_,
                      .fsync_latency = options_.fsync_latency};
    const TimePoint now = clock_->now();
    MutexLock l(&mu_);  // not shared yet; taken for uniformity
    auto j = Journal::open(options_.journal_path, jo, [&](JournalRecord&& r) {
      mu_.assert_held();  // open() replays synchronously, under l
      absl::StatusOr<K> k = Codec<K>::decode(r.key);
      if (!k.ok()) {
        ++replay_undecodable_;
        return;
      }
      std::optional<V> v;
      if (r.type == JournalRecordType::kPut) {
        absl::StatusOr<V> dv = Codec<V>::decode(r.value);
        if (!dv.ok()) {
          ++replay_undecodable_;
          return;
        }
        v = *std::move(dv);
      }
      ++replayed_;
      apply_locked(*k, std::move(v), r.seq, now, /*due=*/now);
    });
    if (!j.ok()) {
      if (j.status().code() == absl::StatusCode::kInvalidArgument) {
        throw std::invalid_argument(absl::StrCat("WriteBack: ", j.status().message()));
      }
      throw std::runtime_error(
          absl::StrCat("WriteBack: cannot open journal: ", j.status().ToString()));
    }
    journal_ = std::move(*j);
    replay_torn_ = journal_->replay_stats().torn;
    replay_corrupt_ = journal_->replay_stats().corrupt;
    replay_acknowledged_ = journal_->replay_stats().acknowledged;
    checkpoint_sent_ = journal_->checkpoint_mark();
  }
}

template <class K, class V, class Hash, class Eq>
inline absl::Status WriteBack<K, V, Hash, Eq>::mutate(const K& key, std::optional<V> value) {
  std::string kb, vb;
  if constexpr (kJournalable) {
    if (journal_) {  // journal_ is set before the object is shared
      Codec<K>::encode(key, kb);
      if (value) Codec<V>::encode(*value, vb);
      if (!journal_internal::record_fits(kb.size(), vb.size())) {
        return absl::InvalidArgumentError(
            absl::StrCat("write-back: key and value encode to ", kb.size(), " + ", vb.size(),
                         " bytes; a journal record holds at most 1 GiB"));
      }
    }
  }
  std::uint64_t jseq = 0;
  {
    MutexLock l(&mu_);
    if (closed_) return absl::FailedPreconditionError("write-back: shutting down");
    auto it = dirty_.find(key);
    if (it == dirty_.end() && dirty_.size() >= options_.max_dirty) {
      ++pressure_waiters_;
      wake_flusher_locked();  // the flusher waives the delay while anyone waits
      space_cv_.wait_for(l, options_.backpressure_wait, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return closed_ || dirty_.size() < options_.max_dirty || dirty_.contains(key);
      });
      --pressure_waiters_;
      if (closed_) return absl::FailedPreconditionError("write-back: shutting down");
      it = dirty_.find(key);
      if (it == dirty_.end() && dirty_.size() >= options_.max_dirty) {
        ++rejected_;
        return absl::ResourceExhaustedError(
            absl::StrCat("write-back: ", dirty_.size(), " dirty keys (max_dirty) for longer than ",
                         options_.backpressure_wait.count(), " ms; the Writer is not keeping up"));
      }
    }
    if (journal_) {
      // A journal with a sticky I/O error can no longer make anything
      // durable: refuse before the dirty set changes, so an error from put
      // means "nothing happened" (only the puts of the group commit that hit
      // the error are both reported and still dirty).
      if (absl::Status h = journal_->health(); !h.ok()) return h;
      jseq = journal_->enqueue(value ? JournalRecordType::kPut : JournalRecordType::kErase, kb, vb);
      // A segment sealed since the last upkeep: have the flusher release
      // (or relog) it now, not after its next batch, which a failing
      // Writer's backoff may put off for up to retry_max while puts keep
      // appending (the journal then grew by every put meanwhile).
      if (const std::size_t sealed = journal_->sealed_segments(); sealed > upkeep_sealed_) {
        upkeep_sealed_ = sealed;
        upkeep_requested_ = true;
        wake_flusher_locked();
      }
    }
    const TimePoint now = clock_->now();
    if (value) {
      ++puts_;
    } else {
      ++erases_;
    }
    apply_locked(key, std::move(value), jseq, now, now + options_.delay);
    // This put may have moved the low-water mark (it superseded the key's
    // older record); its group commit carries a checkpoint now and then.
    // (live_jseq_ holds this key now, so its first entry is the mark.)
    if (jseq != 0 && live_jseq_.begin()->first > checkpoint_sent_ &&
        live_jseq_.begin()->first - checkpoint_sent_ >= options_.journal_checkpoint_every) {
      checkpoint_locked();
    }
    // Two segments sealed since the last upkeep and the flusher has not come
    // (a Writer call that hangs until its timeout, or a starved thread): this
    // put does the upkeep, so the journal stays within its bound however the
    // flusher is scheduled. Rare: once per two segments at most, and only
    // when the flusher is behind.
    if (jseq != 0 && !upkeep_running_ && journal_->sealed_segments() >= sealed_after_upkeep_ + 2) {
      maintain_journal_locked(l);
    }
  }
  if (jseq != 0) return journal_->wait_durable(jseq);
  return absl::OkStatus();
}

template <class K, class V, class Hash, class Eq>
inline void WriteBack<K, V, Hash, Eq>::apply_locked(const K& key, std::optional<V> value,
                                                    std::uint64_t jseq, TimePoint now,
                                                    TimePoint due) {
  const std::uint64_t version = ++version_;
  auto it = dirty_.find(key);
  if (it == dirty_.end()) {
    it = dirty_.emplace(key, Entry{}).first;
    filter_slot(key).fetch_add(1, std::memory_order_release);
    dirty_count_.store(dirty_.size(), std::memory_order_release);
    Entry& e = it->second;
    e.value = std::move(value);
    e.version = e.first_unwritten = version;
    unwritten_.emplace(version, key);
    set_jseq_locked(key, e, jseq);
    schedule_locked(key, e, due);
    return;
  }
  Entry& e = it->second;
  if (!e.in_flight || e.redirtied) ++coalesced_;
  e.value = std::move(value);
  e.version = version;
  if (e.in_flight && !e.redirtied) {
    e.redirtied = true;
    e.redirty_version = version;
    e.redirty_time = now;
  }
  set_jseq_locked(key, e, jseq);
}

template <class K, class V, class Hash, class Eq>
inline void WriteBack<K, V, Hash, Eq>::set_jseq_locked(const K& key, Entry& e, std::uint64_t jseq) {
  if (jseq == 0) return;
  if (e.jseq != 0) live_jseq_.erase(e.jseq);
  e.jseq = jseq;
  live_jseq_.emplace(jseq, key);
}

template <class K, class V, class Hash, class Eq>
inline void WriteBack<K, V, Hash, Eq>::schedule_locked(const K& key, Entry& e, TimePoint due) {
  if (e.scheduled) schedule_.erase(e.due);
  e.due = Due{due, e.version};
  e.scheduled = true;
  const bool first = schedule_.empty() || e.due < schedule_.begin()->first;
  schedule_.emplace(e.due, key);
  if (first) wake_flusher_locked();  // the flusher may be waiting for a later deadline
}

template <class K, class V, class Hash, class Eq>
inline void WriteBack<K, V, Hash, Eq>::unschedule_locked(Entry& e) {
  if (!e.scheduled) return;
  schedule_.erase(e.due);
  e.scheduled = false;
}

template <class K, class V, class Hash, class Eq>
inline auto WriteBack<K, V, Hash, Eq>::take_batch_locked(bool flush_mode,
                                                         std::uint64_t flush_target, TimePoint now)
    -> Batch {
  Batch b;
  std::size_t n = 0;
  auto take = [&](const K& key, Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    unschedule_locked(e);
    e.in_flight = true;
    e.snapshot = e.version;
    e.redirtied = false;
    b.max_jseq = std::max(b.max_jseq, e.jseq);
    if (e.value) {
      b.put_keys.push_back(key);
      b.puts.emplace_back(key, *e.value);
    } else {
      b.erases.push_back(key);
    }
    ++n;
  };
  if (flush_mode) {
    for (auto it = unwritten_.begin();
         it != unwritten_.end() && it->first <= flush_target && n < options_.max_batch; ++it) {
      Entry& e = dirty_.find(it->second)->second;
      if (e.in_flight || e.failed_pass == pass_) continue;
      take(it->second, e);
    }
  } else {
    const TimePoint horizon = pressure_waiters_ > 0 ? now + options_.delay : now;
    for (auto it = schedule_.begin();
         it != schedule_.end() && it->first.first <= horizon && n < options_.max_batch;) {
      const K& key = it->second;
      Entry& e = dirty_.find(key)->second;
      ++it;  // take() erases the current node
      if (e.failed_pass == pass_) continue;
      take(K(key), e);
    }
  }
  return b;
}

template <class K, class V, class Hash, class Eq>
inline void WriteBack<K, V, Hash, Eq>::complete_locked(const K& key, bool ok, TimePoint now) {
  auto it = dirty_.find(key);
  Entry& e = it->second;
  e.in_flight = false;
  if (ok) {
    ++writes_;
    e.failures = 0;
    unwritten_.erase(e.first_unwritten);
    if (!e.redirtied) {
      if (e.jseq != 0) live_jseq_.erase(e.jseq);
      filter_slot(key).fetch_sub(1, std::memory_order_release);
      dirty_.erase(it);
      dirty_count_.store(dirty_.size(), std::memory_order_release);
      space_cv_.notify_all();
      return;
    }
    e.redirtied = false;
    e.first_unwritten = e.redirty_version;
    unwritten_.emplace(e.first_unwritten, key);
    schedule_locked(key, e, e.redirty_time + options_.delay);
    return;
  }
  e.redirtied = false;  // first_unwritten stays: nothing since it was written
  ++e.failures;
  e.failed_pass = pass_;
  schedule_locked(key, e, now + backoff_jittered(e.failures));
}

template <class K, class V, class Hash, class Eq>
inline std::chrono::milliseconds WriteBack<K, V, Hash, Eq>::backoff_nominal(
    std::uint32_t failures) const {
  const std::uint32_t shift = std::min<std::uint32_t>(failures > 0 ? failures - 1 : 0, 30);
  const auto base = options_.retry_base.count();
  const auto cap = options_.retry_max.count();
  const auto d = base > (cap >> shift) ? cap : std::min<decltype(base)>(cap, base << shift);
  return std::chrono::milliseconds(d);
}

template <class K, class V, class Hash, class Eq>
inline TimePoint::duration WriteBack<K, V, Hash, Eq>::backoff_jittered(std::uint32_t failures) {
  const double d = std::chrono::duration<double, std::milli>(backoff_nominal(failures)).count();
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double ms = d * (1.0 - options_.retry_jitter * u(rng_));
  return std::chrono::duration_cast<TimePoint::duration>(
      std::chrono::duration<double, std::milli>(ms));
}

template <class K, class V, class Hash, class Eq>
inline absl::Status WriteBack<K, V, Hash, Eq>::write_batch(MutexLock& l, Batch& b) {
  absl::Status ws, es;
  l.unlocked([&] {
    if (journal_ && b.max_jseq != 0) (void)journal_->wait_durable(b.max_jseq);
    const auto t0 = options_.flush_latency != nullptr ? std::chrono::steady_clock::now()
                                                      : std::chrono::steady_clock::time_point{};
    if (!b.puts.empty()) {
      ws = call_user(kWriterWhat, [&] {
        return writer_.write(std::span<const std::pair<K, V>>(b.puts.data(), b.puts.size()));
      });
    }
    if (!b.erases.empty() && writer_.erase) {
      es = call_user(kWriterWhat, [&] {
        return writer_.erase(std::span<const K>(b.erases.data(), b.erases.size()));
      });
    }
    if (options_.flush_latency != nullptr) options_.flush_latency->record_since(t0);
    if (options_.before_clean) {
      if (ws.ok() && !b.put_keys.empty()) options_.before_clean(b.put_keys);
      if (es.ok() && !b.erases.empty()) options_.before_clean(b.erases);
    }
  });
  const TimePoint now = clock_->now();
  for (const K& k : b.put_keys) complete_locked(k, ws.ok(), now);
  for (const K& k : b.erases) complete_locked(k, es.ok(), now);
  for (const absl::Status* s : {&ws, &es}) {
    if (s->ok()) continue;
    ++write_failures_;
  }
  if (!b.puts.empty() && ws.ok()) ++flushes_;
  if (!b.erases.empty() && writer_.erase && es.ok()) ++flushes_;
  done_cv_.notify_all();
  if (ws.ok() && es.ok()) return absl::OkStatus();
  l.unlocked([&] {
    if (!ws.ok()) report(b.put_keys, ws);
    if (!es.ok()) report(b.erases, es);
  });
  return ws.ok() ? es : ws;
}

template <class K, class V, class Hash, class Eq>
inline void WriteBack<K, V, Hash, Eq>::checkpoint_locked() {
  const std::uint64_t low = low_water_locked();
  if (low <= checkpoint_sent_) return;
  (void)journal_->enqueue_checkpoint(low);
  checkpoint_sent_ = low;
}

template <class K, class V, class Hash, class Eq>
inline void WriteBack<K, V, Hash, Eq>::maintain_journal_locked(MutexLock& l) {
  upkeep_cv_.wait(l, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !upkeep_running_; });
  upkeep_running_ = true;
  struct Done {  // also when an encode throws: a stuck flag would stop the flusher
    WriteBack* self;
    ~Done() ABSL_NO_THREAD_SAFETY_ANALYSIS {  // mu_ is held again when this runs
      self->upkeep_running_ = false;
      self->sealed_after_upkeep_ = self->journal_ ? self->journal_->sealed_segments() : 0;
      self->upkeep_cv_.notify_all();
    }
  } done{this};
  maintain_journal_once_locked(l);
}

template <class K, class V, class Hash, class Eq>
inline void WriteBack<K, V, Hash, Eq>::maintain_journal_once_locked(MutexLock& l) {
  if constexpr (kJournalable) {
    if (!journal_) return;
    const bool sealed = journal_->sealed_segments() > 0;
    const std::uint64_t target = sealed ? journal_->relog_below() : 0;
    std::size_t pinning = 0;  // dirty keys whose newest record is below target
    if (target != 0) {
      for (auto it = live_jseq_.begin(); it != live_jseq_.end() && it->first < target; ++it) {
        ++pinning;
      }
    }
    // Relog only segments at least half superseded (see journal.h,
    // "Compaction"): otherwise every relog filled new segments that the
    // next batch relogged again (a storm of millions of records a second
    // with 1,000 slow keys and 32 KiB segments).
    if (pinning != 0 && pinning * 2 <= journal_->relog_span_records()) {
      std::vector<std::pair<K, std::optional<V>>> items;
      std::vector<std::uint64_t> old;
      for (auto it = live_jseq_.begin(); it != live_jseq_.end() && it->first < target; ++it) {
        items.emplace_back(it->second, dirty_.find(it->second)->second.value);
        old.push_back(it->first);
      }
      std::vector<std::pair<std::string, std::string>> enc(items.size());
      l.unlocked([&] {
        for (std::size_t i = 0; i < items.size(); ++i) {
          Codec<K>::encode(items[i].first, enc[i].first);
          if (items[i].second) Codec<V>::encode(*items[i].second, enc[i].second);
        }
      });
      for (std::size_t i = 0; i < items.size(); ++i) {
        auto it = dirty_.find(items[i].first);
        if (it == dirty_.end() || it->second.jseq != old[i]) continue;  // newer record exists
        const std::uint64_t seq = journal_->enqueue(
            it->second.value ? JournalRecordType::kPut : JournalRecordType::kErase, enc[i].first,
            enc[i].second);
        set_jseq_locked(items[i].first, it->second, seq);
        ++relogged_;
      }
    }
    const std::uint64_t low = low_water_locked();
    const bool moved = low > checkpoint_sent_;
    if (moved) checkpoint_locked();
    if (!moved && !sealed) return;
    const std::uint64_t high = journal_->last_enqueued();
    l.unlocked([&] {
      if (moved) (void)journal_->write_buffered();
      // Deleting a segment drops records that newer ones supersede: those
      // must be durable first.
      if (sealed && journal_->wait_durable(high).ok()) journal_->release_below(low);
    });
    upkeep_sealed_ = journal_->sealed_segments();
  } else {
    (void)l;
  }
}

template <class K, class V, class Hash, class Eq>
inline bool WriteBack<K, V, Hash, Eq>::work_ready_locked(TimePoint now, std::uint64_t poll_seen,
                                                         std::uint64_t flush_seen) const {
  if (stop_ || upkeep_requested_ || poll_requested_ != poll_seen ||
      flush_requested_ != flush_seen) {
    return true;
  }
  if (schedule_.empty()) return false;
  const TimePoint horizon = pressure_waiters_ > 0 ? now + options_.delay : now;
  return schedule_.begin()->first.first <= horizon;
}

template <class K, class V, class Hash, class Eq>
inline void WriteBack<K, V, Hash, Eq>::run() {
  MutexLock l(&mu_);
  for (;;) {
    const std::uint64_t poll_seen = poll_requested_;
    const std::uint64_t flush_seen = flush_requested_;
    const bool flush_mode = flush_seen != flush_done_;
    const std::uint64_t flush_target = flush_target_;
    const bool stopping = stop_;
    upkeep_requested_ = false;  // every pass ends with maintain_journal_locked
    ++pass_;
    absl::Status pass_status;
    bool interrupted = false;
    for (;;) {
      Batch b = take_batch_locked(flush_mode, flush_target, clock_->now());
      if (b.puts.empty() && b.erases.empty()) break;
      absl::Status s = write_batch(l, b);
      if (pass_status.ok()) pass_status = s;
      maintain_journal_locked(l);
      if (!flush_mode && (poll_requested_ != poll_seen || flush_requested_ != flush_seen)) {
        interrupted = true;  // serve the new request with a fresh pass
        break;
      }
    }
    maintain_journal_locked(l);
    if (!interrupted) {
      poll_done_ = poll_seen;
      if (flush_mode) {
        flush_done_ = flush_seen;
        flush_status_ = pass_status;
      }
      done_cv_.notify_all();
    }
    if (stopping) break;
    if (interrupted) continue;
    for (;;) {
      const TimePoint now = clock_->now();
      if (work_ready_locked(now, poll_seen, flush_seen)) break;
      std::chrono::nanoseconds wait = options_.idle_poll;
      if (!schedule_.empty()) {
        const auto until = std::chrono::duration_cast<std::chrono::nanoseconds>(
            schedule_.begin()->first.first - now);
        if (until.count() > 0) wait = std::min(wait, until);
      }
      // Any wake-up (a notify, a timeout) re-reads the Clock above.
      const std::uint64_t seen = wakes_;
      cv_.wait_for(l, wait, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return wakes_ != seen; });
    }
  }
  flusher_exited_ = true;
  done_cv_.notify_all();
}
}  // namespace larder::internal

#endif  // LARDER_INTERNAL_WRITE_BACK_IMPL_H_
