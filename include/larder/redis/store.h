// SPDX-License-Identifier: Apache-2.0
//
// RedisStore<K, V>: a Store (larder/store.h) in Redis, shared by every process
// that points at the same server and key_prefix.
//
// Keys are key_prefix + KeyCodec's bytes (DefaultKeyCodec: integers as
// decimal text, "users:v1:42"; strings as themselves; other types through
// their larder::Codec, and a compile error without one). The value codec
// comes first among the template arguments (RedisStore<K, V, MyValueCodec>):
// values get their own codecs far more often than keys. Values are an 18-byte header
// (format version, fresh_until, stale_until in wall-clock ms) followed by
// ValueCodec's bytes (internal/redis_entry.h), and the Redis key expires at
// stale_until (SET ... PX), so Redis frees what no process may read.
//
// Compared with a plain "GET/SET strings" wrapper:
//   * lookups are tri-state: an unreachable or hung Redis is an error Status
//     within the timeouts (see RedisClient), a circuit breaker turns a long
//     outage into immediate errors, and recovery needs nothing from the user;
//   * a value that does not decode (another format version, truncated, a key
//     somebody else wrote, even a key of another Redis type, a header whose
//     instants are out of range or out of order) is a miss,
//     counted in counters().errors and logged, never an exception;
//   * batches are one round trip: get_many is MGET (chunked by batch_chunk,
//     the chunks pipelined), put_many one pipeline of SET PX, erase_many
//     UNLINK; clear() walks key_prefix with SCAN and UNLINKs what it finds.
//
// Redis Cluster (RedisOptions::cluster_nodes; see redis/client.h): batches
// are split per node and run concurrently. When a node is down, get_many
// returns its error (the dead node's keys are never reported as misses);
// put_many and erase_many return the error too, but what went to healthy
// nodes was written. clear() walks every master; keys moved by a concurrent
// reshard may survive it.
//
// Codecs: larder::Codec<T> covers strings, arithmetic types, enums, vectors
// of arithmetic types, trivially copyable structs and shared_ptr<const T>
// (larder/codec.h). For your own type, specialise larder::Codec<T> or pass a
// codec struct as the ValueCodec argument (tests/integration/redis_store_test.cc
// shows a JSON-ish codec passed explicitly).
//
// Thread-safety: every method may be called concurrently; they share the
// client's pool.
//
// Example:
//
//   auto store = std::make_shared<larder::RedisStore<std::string, User>>(
//       larder::RedisOptions{.host = "redis.internal", .key_prefix = "users:v1:"});
//   larder::Cache<std::string, User> cache(store, {.ttl = std::chrono::minutes(5)});
//
// RedisStore<std::string, std::string> and RedisStore<std::int64_t,
// std::string> are compiled once in larder::redis (`extern template` at the
// end of this header); other types are instantiated where they are used.
#ifndef LARDER_REDIS_STORE_H_
#define LARDER_REDIS_STORE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "larder/clock.h"
#include "larder/codec.h"
#include "larder/internal/absl_compat.h"
#include "larder/internal/redis_entry.h"
#include "larder/internal/striped_counter.h"
#include "larder/redis/client.h"
#include "larder/store.h"

namespace larder {

namespace internal {

// KeyScratch: RedisStore::get_many's key buffer and command vectors, one set per
// thread, kept between calls (cleared; dropped instead when a batch grew
// them past kKept bytes). A Lease is the thread's set, or a fresh one when
// the thread's is already leased (a get_many reached again from inside one:
// a user's codec, say).
struct KeyScratch {
  static constexpr std::size_t kKept = std::size_t{256} * 1024;
  std::string buf;
  std::vector<std::size_t> ends;
  std::vector<std::string_view> rks, flat;
  std::vector<RedisArgs> cmds;
  bool leased = false;

  std::size_t bytes() const {
    return buf.capacity() + ends.capacity() * sizeof(std::size_t) +
           (rks.capacity() + flat.capacity()) * sizeof(std::string_view) +
           cmds.capacity() * sizeof(RedisArgs);
  }
  class Lease {
   public:
    Lease() {
      thread_local KeyScratch mine;
      if (!mine.leased) {
        s_ = &mine;
        s_->leased = true;
      } else {
        own_ = std::make_unique<KeyScratch>();
        s_ = own_.get();
      }
    }
    ~Lease() {
      if (own_ != nullptr) return;
      if (s_->bytes() > kKept) {
        *s_ = KeyScratch{};
      } else {
        s_->buf.clear();
        s_->ends.clear();
        s_->rks.clear();
        s_->flat.clear();
        s_->cmds.clear();
      }
      s_->leased = false;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    KeyScratch* operator->() const { return s_; }

   private:
    KeyScratch* s_ = nullptr;
    std::unique_ptr<KeyScratch> own_;
  };
};

// redis_glob_escape: s with Redis glob specials (* ? [ ] \) escaped, for SCAN MATCH.
inline std::string redis_glob_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}
}  // namespace internal

template <class K, class V, class ValueCodec = Codec<V>, class KeyCodec = DefaultKeyCodec<K>>
class RedisStore : public Store<K, V> {
 public:
  // RedisStore: a store with a client (and pool) of its own. Throws
  // std::invalid_argument for bad options; never fails because Redis is down.
  explicit RedisStore(RedisOptions options)
      : RedisStore(std::make_shared<RedisClient>(std::move(options))) {}

  // RedisStore: a store sharing `client` (its options, key_prefix and pool)
  // with other stores and locks.
  explicit RedisStore(std::shared_ptr<RedisClient> client) : client_(std::move(client)) {
    if (client_ == nullptr) throw std::invalid_argument("RedisStore: client is null");
    clock_ = clock_or_default(client_->options().clock);
    prefix_ = client_->options().key_prefix;
    chunk_ = client_->options().batch_chunk;
  }

  // get: one GET. Errors: kUnavailable / kDeadlineExceeded (see RedisClient).
  absl::StatusOr<std::optional<Entry<V>>> get(const K& key) override {
    const std::string rk = redis_key(key);
    const std::string_view args[] = {"GET", rk};
    const std::int64_t now = to_unix_millis(clock_->now());
    absl::StatusOr<std::optional<Entry<V>>> out = std::nullopt;
    absl::Status s = client_->command(
        args, [&](std::size_t, RedisReplyRef r) { out = decode(r, rk, now); }, "GET");
    if (s.ok()) s = out.status();
    if (!s.ok()) {
      errors_.add();
      return s;
    }
    (out->has_value() ? hits_ : misses_).add();
    return out;
  }

  // put: one SET key value PX (stale_until - now); an entry already past
  // stale_until is UNLINKed instead. An error reply is kInternal.
  absl::Status put(const K& key, Entry<V> entry) override {
    const std::string rk = redis_key(key);
    const std::int64_t now = to_unix_millis(clock_->now());
    const std::int64_t stale = to_unix_millis(entry.stale_until);
    if (stale - now <= 0) return unlink(std::vector<std::string>{rk});
    std::string v;
    internal::append_redis_entry_header(std::min(to_unix_millis(entry.fresh_until), stale), stale,
                                        v);
    ValueCodec::encode(entry.value, v);
    const std::string px = std::to_string(stale - now);
    const std::string_view args[] = {"SET", rk, v, "PX", px};
    absl::Status reply;
    absl::Status s = client_->command(
        args, [&](std::size_t, RedisReplyRef r) { reply = r.status("SET"); }, "SET");
    if (s.ok()) s = reply;
    if (!s.ok()) errors_.add();
    return s;
  }

  // erase: one UNLINK.
  absl::Status erase(const K& key) override { return erase_many(std::span<const K>(&key, 1)); }

  // get_many: MGET in chunks of batch_chunk keys, all chunks pipelined in one
  // round trip. Fails as a whole when the connection fails.
  absl::StatusOr<std::vector<std::optional<Entry<V>>>> get_many(std::span<const K> keys) override {
    std::vector<std::optional<Entry<V>>> out(keys.size());
    if (keys.empty()) return out;
    // The Redis keys, back to back in one buffer, and the MGET commands over
    // them: in the thread's scratch, so a batch allocates nothing for them.
    internal::KeyScratch::Lease scratch;
    std::string& buf = scratch->buf;
    std::vector<std::size_t>& ends = scratch->ends;
    ends.reserve(keys.size());
    buf.reserve(keys.size() * (prefix_.size() + 16));
    for (const K& k : keys) {
      buf += prefix_;
      KeyCodec::encode(k, buf);
      ends.push_back(buf.size());
    }
    std::vector<std::string_view>& rks = scratch->rks;
    rks.reserve(keys.size());
    for (std::size_t i = 0, start = 0; i < ends.size(); start = ends[i++]) {
      rks.emplace_back(buf.data() + start, ends[i] - start);
    }
    std::vector<std::string_view>& flat = scratch->flat;
    std::vector<RedisArgs>& cmds = scratch->cmds;
    build_chunked("MGET", rks, flat, cmds);
    const std::int64_t now = to_unix_millis(clock_->now());
    absl::Status bad;
    absl::Status s = client_->pipeline(
        cmds,
        [&](std::size_t c, RedisReplyRef r) {
          const std::size_t base = c * chunk_;
          const std::size_t n = std::min(chunk_, rks.size() - base);
          if (r.type() != RedisReplyType::kArray || r.size() != n) {
            absl::Status e = r.status("MGET");
            if (bad.ok()) bad = e.ok() ? absl::InternalError("redis MGET: unexpected reply") : e;
            return;
          }
          for (std::size_t j = 0; j < n; ++j) {
            absl::StatusOr<std::optional<Entry<V>>> e = decode(r[j], rks[base + j], now);
            if (e.ok()) {
              out[base + j] = *std::move(e);
            } else if (bad.ok()) {
              bad = e.status();
            }
          }
        },
        "MGET");
    if (s.ok()) s = bad;
    if (!s.ok()) {
      errors_.add();
      return s;
    }
    std::uint64_t hits = 0;
    for (const auto& e : out) hits += e.has_value() ? 1 : 0;
    if (hits != 0) hits_.add(hits);
    if (hits != out.size()) misses_.add(out.size() - hits);
    return out;
  }

  // put_many: one pipeline of SET PX (UNLINK for entries already expired).
  // Returns the first error after reading every reply.
  absl::Status put_many(std::span<const std::pair<K, Entry<V>>> entries) override {
    if (entries.empty()) return absl::OkStatus();
    const std::int64_t now = to_unix_millis(clock_->now());
    const std::size_t n = entries.size();
    std::vector<std::string> keys(n), values(n), pxs(n);
    std::vector<std::string_view> flat;
    flat.reserve(n * 5);
    std::vector<std::size_t> starts(n), sizes(n);
    for (std::size_t i = 0; i < n; ++i) {
      const auto& [k, e] = entries[i];
      keys[i] = redis_key(k);
      const std::int64_t fresh = to_unix_millis(e.fresh_until);
      const std::int64_t stale = to_unix_millis(e.stale_until);
      starts[i] = flat.size();
      if (stale - now <= 0) {
        flat.insert(flat.end(), {"UNLINK", keys[i]});
      } else {
        std::string& v = values[i];
        internal::append_redis_entry_header(std::min(fresh, stale), stale, v);
        ValueCodec::encode(e.value, v);
        pxs[i] = std::to_string(stale - now);
        flat.insert(flat.end(), {"SET", keys[i], v, "PX", pxs[i]});
      }
      sizes[i] = flat.size() - starts[i];
    }
    std::vector<RedisArgs> cmds(n);
    for (std::size_t i = 0; i < n; ++i) cmds[i] = RedisArgs(flat.data() + starts[i], sizes[i]);
    absl::Status first;
    absl::Status s = client_->pipeline(
        cmds,
        [&](std::size_t, RedisReplyRef r) {
          if (first.ok()) first = r.status("SET");
        },
        "SET");
    if (s.ok()) s = first;
    if (!s.ok()) errors_.add();
    return s;
  }

  // erase_many: UNLINK in chunks of batch_chunk keys, pipelined.
  absl::Status erase_many(std::span<const K> keys) override {
    if (keys.empty()) return absl::OkStatus();
    std::vector<std::string> rks;
    rks.reserve(keys.size());
    for (const K& k : keys) rks.push_back(redis_key(k));
    return unlink(rks);
  }

  // clear: SCAN MATCH <key_prefix>* and UNLINK what it finds, batch by batch.
  // kFailedPrecondition with an empty key_prefix (it would empty the whole
  // database). Costs one round trip per batch_chunk keys scanned; keys
  // written meanwhile may survive.
  absl::Status clear() override {
    if (prefix_.empty()) {
      return absl::FailedPreconditionError(
          "RedisStore::clear needs a key_prefix (it would delete the whole database)");
    }
    const std::string match = internal::redis_glob_escape(prefix_) + "*";
    const std::string count = std::to_string(chunk_);
    std::string cursor = "0";
    do {
      const std::string_view args[] = {"SCAN", cursor, "MATCH", match, "COUNT", count};
      std::vector<std::string> found;
      absl::Status bad;
      absl::Status s = client_->command(
          args,
          [&](std::size_t, RedisReplyRef r) {
            if (r.type() != RedisReplyType::kArray || r.size() != 2) {
              absl::Status e = r.status("SCAN");
              bad = e.ok() ? absl::InternalError("redis SCAN: unexpected reply") : e;
              return;
            }
            cursor = std::string(r[0].str());
            const RedisReplyRef ks = r[1];
            for (std::size_t i = 0; i < ks.size(); ++i) found.emplace_back(ks[i].str());
          },
          "SCAN");
      if (s.ok()) s = bad;
      if (s.ok() && !found.empty()) s = unlink(found);
      if (!s.ok()) {
        errors_.add();
        return s;
      }
    } while (cursor != "0");
    return absl::OkStatus();
  }

  std::shared_ptr<Clock> clock() const override { return clock_; }

  StoreCounters counters() const override {
    StoreCounters c;
    c.hits = hits_.load();
    c.misses = misses_.load();
    c.errors = errors_.load();
    c.expirations = expired_.load();
    return c;
  }

  // for_each_metric: the store's counters and its client's metrics
  // (metrics.h), all labelled store=<store_label>.
  void for_each_metric(std::span<const MetricLabel> labels, std::string_view store_label,
                       MetricCallback out) const override {
    Store<K, V>::for_each_metric(labels, store_label, out);
    const internal::MetricLabels<8> l(labels, {{"store", store_label}});
    client_->for_each_metric(l.span(), out);
  }

  // client: the client this store talks through (share it with a RedisLock
  // or RedisLoadGuard).
  const std::shared_ptr<RedisClient>& client() const { return client_; }

  // redis_key: the Redis key `key` is stored under.
  std::string redis_key(const K& key) const {
    std::string k = prefix_;
    KeyCodec::encode(key, k);
    return k;
  }

 private:
  // build_chunked: cmd k1 .. kn commands of at most chunk_ keys each.
  template <class Keys>  // a vector of std::string or of std::string_view
  void build_chunked(std::string_view cmd, const Keys& rks, std::vector<std::string_view>& flat,
                     std::vector<RedisArgs>& cmds) const {
    const std::size_t chunks = (rks.size() + chunk_ - 1) / chunk_;
    flat.reserve(flat.size() + rks.size() + chunks);  // no reallocation below: cmds point into it
    cmds.reserve(cmds.size() + chunks);
    for (std::size_t base = 0; base < rks.size(); base += chunk_) {
      const std::size_t start = flat.size();
      flat.push_back(cmd);
      for (std::size_t j = base; j < std::min(rks.size(), base + chunk_); ++j)
        flat.push_back(rks[j]);
      cmds.emplace_back(flat.data() + start, flat.size() - start);
    }
  }

  absl::Status unlink(const std::vector<std::string>& rks) {
    std::vector<std::string_view> flat;
    std::vector<RedisArgs> cmds;
    build_chunked("UNLINK", rks, flat, cmds);
    absl::Status first;
    absl::Status s = client_->pipeline(
        cmds,
        [&](std::size_t, RedisReplyRef r) {
          if (first.ok()) first = r.status("UNLINK");
        },
        "UNLINK");
    if (s.ok()) s = first;
    if (!s.ok()) errors_.add();
    return s;
  }

  // decode: the entry in one GET/MGET reply element; nullopt when absent,
  // expired by our clock, or not decodable (counted and logged); an error
  // for an error reply other than WRONGTYPE (NOPERM, NOAUTH, ...).
  absl::StatusOr<std::optional<Entry<V>>> decode(RedisReplyRef r, std::string_view rk,
                                                 std::int64_t now) {
    if (r.type() == RedisReplyType::kNil) return std::nullopt;
    if (r.type() != RedisReplyType::kString) {
      absl::Status e = r.status("GET");
      if (!e.ok() && !r.str().starts_with("WRONGTYPE")) return e;
      corrupt(rk, e.ok() ? absl::DataLossError("not a string value") : e);
      return std::nullopt;
    }
    absl::StatusOr<internal::RedisEntryHeader> h = internal::decode_redis_entry(r.str());
    if (!h.ok()) {
      corrupt(rk, h.status());
      return std::nullopt;
    }
    if (h->stale_until_ms <= now) {
      expired_.add();
      return std::nullopt;
    }
    absl::StatusOr<V> v = ValueCodec::decode(h->payload);
    if (!v.ok()) {
      corrupt(rk, v.status());
      return std::nullopt;
    }
    // decode_redis_entry refused instants a TimePoint cannot hold and
    // fresh_until > stale_until (a counted, logged miss above), so these are
    // exact, and the entry is not past stale_until.
    return std::optional<Entry<V>>(Entry<V>{*std::move(v), h->fresh_until, h->stale_until});
  }

  void corrupt(std::string_view rk, const absl::Status& why) {
    errors_.add();
    if (client_->logging()) {
      client_->log(RedisLogLevel::kWarning,
                   absl::StrCat("larder redis: key \"", absl::CHexEscape(internal::av(rk)),
                                "\" does not hold a readable larder entry (", why.ToString(),
                                "); treated as a miss"));
    }
  }

  std::shared_ptr<RedisClient> client_;
  std::shared_ptr<Clock> clock_;
  std::string prefix_;
  std::size_t chunk_ = 1000;
  internal::StripedCounter hits_, misses_, errors_, expired_;
};

}  // namespace larder

// The common <K, V> (std::string or std::int64_t keys, std::string values) are
// instantiated once in larder::redis (src/redis_store_instances.cc); other types are instantiated
// where they are used, as usual. Define LARDER_NO_EXTERN_TEMPLATES to instantiate
// them in your own files too, e.g. when those are built with a sanitizer the
// library was not built with.
#ifndef LARDER_NO_EXTERN_TEMPLATES
namespace larder {
extern template class RedisStore<std::string, std::string>;
extern template class RedisStore<std::int64_t, std::string>;
}  // namespace larder
#endif  // LARDER_NO_EXTERN_TEMPLATES

#endif  // LARDER_REDIS_STORE_H_
