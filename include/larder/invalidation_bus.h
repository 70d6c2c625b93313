// SPDX-License-Identifier: Apache-2.0
//
// InvalidationBus: "key K changed" (or "drop everything") sent to every
// instance that caches K, so that several in-process copies (TieredStore's
// L1s, in one process or many) stay coherent with the shared tier below them.
//
// A bus carries key *bytes* (the key encoded with Codec<K>), not typed keys,
// so one bus type serves every cache and the messages can cross processes.
// Two implementations:
//   * InProcessInvalidationBus (here): delivery is a synchronous call, in the
//     publisher's thread, to every other subscriber. For tests, and for
//     several caches in one process.
//   * RedisInvalidationBus (larder/redis/invalidation_bus.h): Redis pub/sub.
//
// How it differs from a plain observer list:
//   * Origins. A publisher that also caches must not invalidate itself on its
//     own publish (it has just written the new value to its own L1). Every
//     message carries an origin id; a subscriber created with subscribe_as(o)
//     does not hear messages published with publish_from(o, ...). Origins are
//     random 64-bit ids (new_origin()), unique across processes with
//     overwhelming probability. publish() is a message from nobody: every
//     subscriber hears it (e.g. a service that writes the database and has no
//     cache of its own).
//   * Gaps. A bus may lose messages (a Redis connection dropped and was
//     re-established: pub/sub keeps nothing for absent subscribers). It then
//     calls on_gap, and the subscriber must drop everything it caches, since
//     any key may have changed meanwhile. publish_clear_from() asks every
//     other subscriber to do the same (TieredStore::clear()).
//   * Lifetimes. Destroying a Subscription unsubscribes, and waits for a
//     callback of it that is running on another thread: once the destructor
//     returns, its callbacks never run again, so a subscriber may capture
//     `this` and destroy the subscription first thing in its own destructor.
//     (From inside its own callback it does not wait for itself.)
//
// Writing a bus of your own (Kafka, NATS, a database's change feed): implement
// publish() and subscribe(). The origin- and clear-aware methods have
// defaults that forward to them: a bus without origins delivers a publisher's
// own messages back to it (harmless: one extra L1 miss per write), and a bus
// without a clear marker answers publish_clear_from() with kUnimplemented
// (other L1s then keep entries a clear() removed below them until they are
// invalidated or reach TieredStoreOptions::l1_max_ttl).
//
// Thread-safety: every method may be called concurrently. Callbacks are user
// (or larder) code and run outside the bus's locks; they may publish.
//
// Example:
//
//   auto bus = std::make_shared<larder::InProcessInvalidationBus>();
//   auto sub = bus->subscribe([](std::string_view key) { /* drop key */ },
//                             [] { /* drop everything */ });
//   (void)bus->publish("user:42");   // the listener runs now, in this thread
#ifndef LARDER_INVALIDATION_BUS_H_
#define LARDER_INVALIDATION_BUS_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "larder/internal/mutex.h"

namespace larder {

class InvalidationBus {
 public:
  // Origin: who published a message. kNoOrigin: nobody (every subscriber hears it).
  using Origin = std::uint64_t;
  static constexpr Origin kNoOrigin = 0;

  // Listener: called with the key bytes of one invalidated key.
  using Listener = std::function<void(std::string_view key_bytes)>;
  // GapListener: messages may have been lost, or a clear was published; drop
  // everything cached.
  using GapListener = std::function<void()>;

  // Subscription: a registration; destroying it unsubscribes (see the file
  // comment for what the destructor waits for).
  class Subscription {
   public:
    virtual ~Subscription() = default;
  };

  virtual ~InvalidationBus() = default;

  // publish: every subscriber's listener hears key_bytes. Errors are the
  // transport's (kUnavailable / kDeadlineExceeded for Redis); the message is
  // then lost for every subscriber.
  virtual absl::Status publish(std::string_view key_bytes) = 0;

  // subscribe: on_invalidate for every key published (from any origin), and
  // on_gap (may be null) when messages may have been lost. Never null.
  virtual std::unique_ptr<Subscription> subscribe(Listener on_invalidate,
                                                  GapListener on_gap = nullptr) = 0;

  // publish_from: publish as `origin`: subscribers made with
  // subscribe_as(origin, ...) do not hear it. Default: publish(key_bytes).
  virtual absl::Status publish_from(Origin origin, std::string_view key_bytes) {
    (void)origin;
    return publish(key_bytes);
  }

  // publish_many_from: publish_from for each key; a transport may send them
  // in one round trip. Returns the first error after trying every key.
  virtual absl::Status publish_many_from(Origin origin, std::span<const std::string> keys_bytes) {
    absl::Status first;
    for (const std::string& k : keys_bytes) {
      absl::Status s = publish_from(origin, k);
      if (!s.ok() && first.ok()) first = std::move(s);
    }
    return first;
  }

  // publish_clear_from: every subscriber not made with subscribe_as(origin)
  // gets on_gap (drops everything). Default: kUnimplemented.
  virtual absl::Status publish_clear_from(Origin origin) {
    (void)origin;
    return absl::UnimplementedError("this InvalidationBus cannot publish a clear");
  }

  // subscribe_as: subscribe, deaf to messages published with publish_from(self).
  // Default: subscribe() (hears its own messages too).
  virtual std::unique_ptr<Subscription> subscribe_as(Origin self, Listener on_invalidate,
                                                     GapListener on_gap = nullptr) {
    (void)self;
    return subscribe(std::move(on_invalidate), std::move(on_gap));
  }

  // new_origin: a fresh random origin id, never kNoOrigin. Thread-safe.
  static Origin new_origin() {
    static const std::uint64_t base = [] {
      std::random_device rd;
      return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    }();
    static std::atomic<std::uint64_t> counter{0};
    // splitmix64 of base + counter: distinct per call in this process, and
    // unrelated across processes (their bases differ).
    std::uint64_t z = base + 0x9e3779b97f4a7c15ULL * (counter.fetch_add(1) + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return z == kNoOrigin ? 1 : z;
  }
};

namespace internal {

// ListenerSet: the subscriber list shared by the buses here and in src/.
//
// Design: subscribers are shared_ptr<Sub> in a vector under mu_. Delivery
// takes a snapshot of the vector under mu_ and calls each subscriber outside
// it, so callbacks may publish, subscribe or unsubscribe. A Sub counts the
// callbacks running on it (running, under its own mutex); unsubscribe marks
// it inactive (no new callback starts) and waits until running drops to zero,
// or to one when it is called from inside that subscriber's own callback (a
// thread-local marks which Sub the current thread is delivering to).
// Delivery: O(subscribers) per message, one vector copy.
class ListenerSet : public std::enable_shared_from_this<ListenerSet> {
 public:
  using Origin = InvalidationBus::Origin;

  struct Sub {
    Origin self = InvalidationBus::kNoOrigin;
    InvalidationBus::Listener on_invalidate;
    InvalidationBus::GapListener on_gap;
    Mutex mu;
    CondVar idle;
    int running ABSL_GUARDED_BY(mu) = 0;
    bool active ABSL_GUARDED_BY(mu) = true;
    // For buses that lose messages: set while it may have missed some, so
    // the bus calls on_gap once it is listening again.
    bool missed = false;  // guarded by the owning ListenerSet's mu_
  };

  class Handle final : public InvalidationBus::Subscription {
   public:
    Handle(std::shared_ptr<ListenerSet> set, std::shared_ptr<Sub> sub)
        : set_(std::move(set)), sub_(std::move(sub)) {}
    ~Handle() override { set_->remove(sub_); }

   private:
    std::shared_ptr<ListenerSet> set_;
    std::shared_ptr<Sub> sub_;
  };

  // add: registers a subscriber; `missed` starts as given; *out (when
  // given) names it for mark_missed.
  std::unique_ptr<InvalidationBus::Subscription> add(Origin self,
                                                     InvalidationBus::Listener on_invalidate,
                                                     InvalidationBus::GapListener on_gap,
                                                     bool missed = false,
                                                     const Sub** out = nullptr) {
    auto sub = std::make_shared<Sub>();
    sub->self = self;
    sub->on_invalidate = std::move(on_invalidate);
    sub->on_gap = std::move(on_gap);
    sub->missed = missed;
    if (out != nullptr) *out = sub.get();
    {
      MutexLock l(&mu_);
      subs_.push_back(sub);
    }
    return std::make_unique<Handle>(shared_from_this(), std::move(sub));
  }

  // snapshot: the subscribers now.
  std::vector<std::shared_ptr<Sub>> snapshot() const {
    MutexLock l(&mu_);
    return subs_;
  }

  // deliver_key / deliver_gap: call every subscriber except those whose
  // origin is `from` (kNoOrigin: everybody), outside every lock.
  void deliver_key(Origin from, std::string_view key_bytes) const {
    for (const auto& s : snapshot()) {
      if (from != InvalidationBus::kNoOrigin && s->self == from) continue;
      if (s->on_invalidate) call(*s, [&] { s->on_invalidate(key_bytes); });
    }
  }
  void deliver_gap(Origin from) const {
    for (const auto& s : snapshot()) {
      if (from != InvalidationBus::kNoOrigin && s->self == from) continue;
      if (s->on_gap) call(*s, [&] { s->on_gap(); });
    }
  }
  void deliver_gap_to(const std::vector<std::shared_ptr<Sub>>& subs) const {
    for (const auto& s : subs) {
      if (s->on_gap) call(*s, [&] { s->on_gap(); });
    }
  }

  // mark_all_missed: every current subscriber may have lost messages.
  void mark_all_missed() {
    MutexLock l(&mu_);
    for (auto& s : subs_) s->missed = true;
  }
  // take_missed: the subscribers marked missed, unmarked.
  std::vector<std::shared_ptr<Sub>> take_missed() {
    std::vector<std::shared_ptr<Sub>> out;
    MutexLock l(&mu_);
    for (auto& s : subs_) {
      if (s->missed) {
        s->missed = false;
        out.push_back(s);
      }
    }
    return out;
  }
  void mark_missed(const Sub* sub) {
    MutexLock l(&mu_);
    for (auto& s : subs_) {
      if (s.get() == sub) s->missed = true;
    }
  }

  std::size_t size() const {
    MutexLock l(&mu_);
    return subs_.size();
  }

 private:
  static const Sub*& delivering() {
    thread_local const Sub* current = nullptr;
    return current;
  }

  template <class F>
  static void call(Sub& s, F&& f) {
    {
      MutexLock l(&s.mu);
      if (!s.active) return;
      ++s.running;
    }
    const Sub* outer = delivering();
    delivering() = &s;
    struct Leave {
      Sub& s;
      const Sub* outer;
      ~Leave() {
        delivering() = outer;
        MutexLock l(&s.mu);
        if (--s.running == 0) s.idle.notify_all();
      }
    } leave{s, outer};
    f();
  }

  void remove(const std::shared_ptr<Sub>& sub) {
    {
      MutexLock l(&mu_);
      subs_.erase(std::remove(subs_.begin(), subs_.end(), sub), subs_.end());
    }
    // Waiting for ourselves (unsubscribing from inside our own callback)
    // would never end: allow the one running frame that is ours.
    const int own = delivering() == sub.get() ? 1 : 0;
    MutexLock l(&sub->mu);
    sub->active = false;
    sub->idle.wait(l, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(sub->mu) { return sub->running <= own; });
  }

  mutable Mutex mu_;
  std::vector<std::shared_ptr<Sub>> subs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace internal

// InProcessInvalidationBus: delivery is a direct call, in the publisher's
// thread, to every other subscriber (in subscription order), before
// publish() returns. Never loses a message, so on_gap runs only for
// publish_clear_from() and simulate_gap(). publish() never fails.
class InProcessInvalidationBus final : public InvalidationBus {
 public:
  InProcessInvalidationBus() : set_(std::make_shared<internal::ListenerSet>()) {}

  absl::Status publish(std::string_view key_bytes) override {
    return publish_from(kNoOrigin, key_bytes);
  }
  absl::Status publish_from(Origin origin, std::string_view key_bytes) override {
    published_.fetch_add(1, std::memory_order_relaxed);
    set_->deliver_key(origin, key_bytes);
    return absl::OkStatus();
  }
  absl::Status publish_clear_from(Origin origin) override {
    published_.fetch_add(1, std::memory_order_relaxed);
    set_->deliver_gap(origin);
    return absl::OkStatus();
  }
  std::unique_ptr<Subscription> subscribe(Listener on_invalidate,
                                          GapListener on_gap = nullptr) override {
    return set_->add(kNoOrigin, std::move(on_invalidate), std::move(on_gap));
  }
  std::unique_ptr<Subscription> subscribe_as(Origin self, Listener on_invalidate,
                                             GapListener on_gap = nullptr) override {
    return set_->add(self, std::move(on_invalidate), std::move(on_gap));
  }

  // simulate_gap: calls every subscriber's on_gap, as a bus that lost
  // messages would (for tests).
  void simulate_gap() { set_->deliver_gap(kNoOrigin); }

  // subscribers: how many subscriptions are alive. published: messages
  // published so far (keys and clears).
  std::size_t subscribers() const { return set_->size(); }
  std::uint64_t published() const { return published_.load(std::memory_order_relaxed); }

 private:
  std::shared_ptr<internal::ListenerSet> set_;
  std::atomic<std::uint64_t> published_{0};
};

}  // namespace larder

#endif  // LARDER_INVALIDATION_BUS_H_
