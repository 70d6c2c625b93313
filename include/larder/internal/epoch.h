// SPDX-License-Identifier: Apache-2.0
//
// Epoch: process-wide epoch-based memory reclamation (EBR), so that readers
// may traverse a structure without a lock while writers unlink and later free
// parts of it.
//
// How it differs from the obvious alternatives: a reader-writer lock (or a
// shared_ptr per node) makes every reader write a shared cache line; hazard
// pointers need a store and a fence per node visited. Here a reader announces
// the global epoch in a slot owned by its thread (one exchange on a line no
// other thread writes) and clears it when done; nothing shared is written.
//
// Design essay.
//
//   One process-wide domain: a global epoch counter and a list of per-thread
//   records (cache-line sized, never freed, reused by later threads):
//
//     global_epoch: 7        records: [T1: 7] -> [T2: 0 (idle)] -> [T3: 7]
//
//   Reader:  guard = Epoch::Guard();   // record = global (seq_cst exchange)
//            ... load pointers, read the objects they point to ...
//            ~Guard();                  // record = 0 (release)
//   Writer:  unlink p (release store), then retire it: note e = current();
//            p may be freed once current() >= e + 2 (safe(e)).
//   Advance: try_advance() bumps the global epoch from g to g + 1 only when
//            every active record announces g.
//
//   Why e + 2: a reader that can still reach p entered before p was unlinked,
//   so it announced e or earlier; while it stays active the epoch can reach
//   at most (its epoch + 1) <= e + 1. Two advances after the retirement
//   therefore prove that every such reader has left. The argument needs the
//   announcement to be ordered before the reader's loads. The portable way
//   is a seq_cst exchange (a full barrier, as crossbeam-epoch's pin()); but
//   a full barrier per read also stops the CPU from overlapping one lookup's
//   cache misses with the next one's, which costs more than the barrier
//   itself. So on Linux the fence is asymmetric (as folly's and liburcu's):
//   readers announce with a plain store, and try_advance() first runs
//   membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which makes every running
//   thread of the process execute a full barrier, before it scans. Readers
//   pay nothing; the rare advance pays a system call (microseconds), which
//   callers amortise by retiring in batches. Where membarrier is missing
//   (and under ThreadSanitizer, which cannot see it) readers use the
//   exchange. The scans and the epoch bump are seq_cst. ThreadSanitizer sees
//   the happens-before edges directly: a reader's clearing store (release)
//   is read by the scan (acquire) that allows the free.
//
//   Guards nest (a per-thread depth); only the outermost announces. A thread
//   that exits returns its record for reuse. A reader blocks reclamation only
//   while inside a guard, so guards must be short and must not block.
//
//   Costs: enter/exit two stores on the thread's own line (an exchange
//   without membarrier); try_advance one membarrier system call plus
//   O(threads that ever used the domain at once).
//
// Thread-safety: every function may be called from any thread.
//
// Example:
//   { Epoch::Guard g; Node* n = head.load(std::memory_order_acquire); use(n); }
//   // writer, under its own lock:
//   head.store(next, std::memory_order_release);
//   retired.push_back({Epoch::current(), n});
//   Epoch::try_advance();
//   if (Epoch::safe(retired.front().epoch)) delete retired.front().node;
#ifndef LARDER_INTERNAL_EPOCH_H_
#define LARDER_INTERNAL_EPOCH_H_

#include <atomic>
#include <cstdint>

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

// LARDER_EPOCH_MEMBARRIER: readers may announce with a plain store (see the
// essay). Tested with __NR_membarrier: MEMBARRIER_CMD_* are enumerators, not
// macros. Off under ThreadSanitizer, which cannot see the system call's
// barrier.
#if defined(__SANITIZE_THREAD__)
#define LARDER_EPOCH_MEMBARRIER 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LARDER_EPOCH_MEMBARRIER 0
#endif
#endif
#if !defined(LARDER_EPOCH_MEMBARRIER)
#if defined(__linux__) && defined(__NR_membarrier)
#define LARDER_EPOCH_MEMBARRIER 1
#else
#define LARDER_EPOCH_MEMBARRIER 0
#endif
#endif

#include "larder/internal/striped_counter.h"

namespace larder::internal {

class Epoch {
 public:
  // Record: one thread's announcement slot. Owned by one thread at a time.
  struct alignas(kCacheLine) Record {
    std::atomic<std::uint64_t> announced{0};  // 0: not in a guard; else the epoch
    std::atomic<bool> in_use{false};
    std::uint32_t depth = 0;  // owner thread only
    bool asymmetric = false;  // owner thread only: announce with a plain store
    std::uint32_t index = 0;  // dense, stable id of the record (0, 1, 2, ...)
    Record* next = nullptr;   // immutable once published
  };

  // Guard: the calling thread is inside a read-side critical section for the
  // guard's lifetime. Nestable. Not copyable or movable.
  class Guard {
   public:
    Guard() : r_(self()) {
      if (r_->depth++ == 0) {
        const std::uint64_t e = global().epoch.load(std::memory_order_seq_cst);
        if (r_->asymmetric) {
          // Ordered before this thread's later loads by the membarrier that
          // try_advance() issues before scanning (see the essay).
          r_->announced.store(e, std::memory_order_relaxed);
          std::atomic_signal_fence(std::memory_order_seq_cst);
        } else {
          r_->announced.exchange(e, std::memory_order_seq_cst);
        }
      }
    }
    ~Guard() {
      if (--r_->depth == 0) r_->announced.store(0, std::memory_order_release);
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    Record* r_;
  };

  // current: the global epoch (starts at 1).
  static std::uint64_t current() { return global().epoch.load(std::memory_order_seq_cst); }

  // safe: whether an object retired when current() was e may be freed now.
  static bool safe(std::uint64_t e) { return current() >= e + 2; }

  // try_advance: bumps the epoch if every thread inside a guard announced the
  // current one. Returns the epoch after the attempt. O(records).
  static std::uint64_t try_advance() {
    Global& g = global();
    std::uint64_t e = g.epoch.load(std::memory_order_seq_cst);
    if (asymmetric() && !heavy_barrier()) return e;
    for (Record* r = g.head.load(std::memory_order_acquire); r != nullptr; r = r->next) {
      const std::uint64_t a = r->announced.load(std::memory_order_seq_cst);
      if (a != 0 && a != e) return e;
    }
    if (g.epoch.compare_exchange_strong(e, e + 1, std::memory_order_seq_cst)) return e + 1;
    return e;  // another thread advanced: e holds the new value
  }

  // thread_index: a small dense number for the calling thread, unique among
  // live threads (records are reused after a thread exits). For striping.
  static std::uint32_t thread_index() { return self()->index; }

  // asymmetric: whether readers announce without a barrier (membarrier works).
  static bool asymmetric() {
    static const bool ok = register_membarrier();
    return ok;
  }

  // in_guard: whether the calling thread is inside a guard (for assertions).
  static bool in_guard() { return self()->depth > 0; }

 private:
  struct alignas(kCacheLine) Global {
    std::atomic<std::uint64_t> epoch{1};
    std::atomic<Record*> head{nullptr};
    std::atomic<std::uint32_t> records{0};
  };
  // Constant-initialised and trivially destructible: no guard on the read
  // path, and usable by threads that outlive other statics.
  static Global& global() {
    static constinit Global g{};
    return g;
  }

  // Holder: returns the thread's record when the thread exits.
  struct Holder {
    Record* r = nullptr;
    ~Holder() {
      if (r != nullptr) {
        r->announced.store(0, std::memory_order_release);
        r->depth = 0;
        r->in_use.store(false, std::memory_order_release);
        r = nullptr;
      }
    }
  };

  static Record* self() {
    thread_local Holder holder;
    if (holder.r == nullptr) [[unlikely]]
      holder.r = acquire_record();
    return holder.r;
  }

  static bool register_membarrier() {
#if LARDER_EPOCH_MEMBARRIER
    const long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
    return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
    return false;
#endif
  }

  // heavy_barrier: a full barrier on every running thread of the process.
  // false if the system call failed (then nothing may be freed).
  static bool heavy_barrier() {
#if LARDER_EPOCH_MEMBARRIER
    if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) return false;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return true;
#else
    return false;  // never called: asymmetric() is false
#endif
  }

  // Out of line so that self(), on every read, inlines to a TLS load and a test.
#if defined(__GNUC__)
  [[gnu::noinline]]
#endif
  static Record*
  acquire_record() {
    const bool asym = asymmetric();  // registered before any reader relies on it
    Record* r = acquire_record_slow();
    r->asymmetric = asym;
    return r;
  }

  static Record* acquire_record_slow() {
    Global& g = global();
    for (Record* r = g.head.load(std::memory_order_acquire); r != nullptr; r = r->next) {
      bool expected = false;
      if (!r->in_use.load(std::memory_order_relaxed) &&
          r->in_use.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
        return r;
      }
    }
    Record* r = new Record();  // never freed: the list only grows, records are reused
    r->in_use.store(true, std::memory_order_relaxed);
    r->index = g.records.fetch_add(1, std::memory_order_relaxed);
    Record* head = g.head.load(std::memory_order_relaxed);
    do {
      r->next = head;
    } while (!g.head.compare_exchange_weak(head, r, std::memory_order_release,
                                           std::memory_order_relaxed));
    return r;
  }
};

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_EPOCH_H_
