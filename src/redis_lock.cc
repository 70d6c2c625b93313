// SPDX-License-Identifier: Apache-2.0
//
// RedisLock (include/larder/redis/lock.h). The two Lua scripts run atomically
// on the server (Redis executes a script without interleaving other
// commands), which is what makes "compare, then delete / pexpire" safe; a
// client-side GET followed by DEL could delete a lease another process took
// in between. Scripts are sent with EVAL each time: they are under 150 bytes,
// so EVALSHA's saving is not worth its NOSCRIPT fallback path.
#include <algorithm>
#include <random>
#include <stdexcept>
#include <thread>

#include "absl/strings/str_cat.h"
#include "larder/clock.h"
#include "larder/internal/absl_compat.h"
#include "larder/redis/lock.h"

namespace larder {
namespace {

constexpr std::string_view kReleaseScript =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end";
constexpr std::string_view kExtendScript =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

std::mt19937_64& rng() {
  thread_local std::mt19937_64 gen = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }();
  return gen;
}

// new_token: 128 random bits as 32 hex digits.
std::string new_token() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string t;
  t.reserve(32);
  for (int w = 0; w < 2; ++w) {
    std::uint64_t x = rng()();
    for (int i = 0; i < 16; ++i, x >>= 4) t.push_back(kHex[x & 0xf]);
  }
  return t;
}

// expect_integer: the status of a reply that should be an integer, and its value.
absl::StatusOr<long long> integer_reply(RedisReplyRef r, std::string_view what) {
  if (r.type() == RedisReplyType::kInteger) return r.integer();
  absl::Status s = r.status(what);
  if (!s.ok()) return s;
  return absl::InternalError(absl::StrCat("redis ", internal::av(what), ": unexpected reply type"));
}

}  // namespace

RedisLock::RedisLock(std::shared_ptr<RedisClient> client, std::string_view name,
                     RedisLockOptions options)
    : client_(std::move(client)), options_(options) {
  if (client_ == nullptr) throw std::invalid_argument("RedisLock: client is null");
  if (options_.ttl.count() <= 0) throw std::invalid_argument("RedisLockOptions: ttl must be > 0");
  if (options_.wait.count() < 0) throw std::invalid_argument("RedisLockOptions: wait must be >= 0");
  key_ = client_->options().key_prefix + std::string(name);
}

RedisLock::~RedisLock() {
  if (!held()) return;
  absl::Status s = unlock();
  if (!s.ok() && client_->logging()) {
    client_->log(RedisLogLevel::kWarning,
                 absl::StrCat("larder redis: releasing lock failed: ", s.ToString()));
  }
}

absl::StatusOr<bool> RedisLock::try_lock() {
  if (held()) return true;
  std::string token = new_token();
  const std::string px = std::to_string(options_.ttl.count());
  const std::string_view args[] = {"SET", key_, token, "NX", "PX", px};
  absl::StatusOr<bool> acquired = false;
  absl::Status s = client_->command(
      args,
      [&](std::size_t, RedisReplyRef r) {
        if (r.type() == RedisReplyType::kStatus) {
          acquired = true;  // +OK
        } else if (r.type() == RedisReplyType::kNil) {
          acquired = false;  // NX: somebody holds it
        } else {
          absl::Status e = r.status("lock SET NX");
          acquired = e.ok() ? absl::InternalError("redis lock SET NX: unexpected reply") : e;
        }
      },
      "lock SET NX");
  if (!s.ok()) return s;
  if (acquired.ok() && *acquired) token_ = std::move(token);
  return acquired;
}

absl::StatusOr<bool> RedisLock::lock() {
  using std::chrono::microseconds;
  // wait and retry_interval may be anything up to milliseconds::max() ("wait
  // forever"): the deadline saturates, and the pause is computed in
  // microseconds capped at kMaxPause, so neither overflows.
  constexpr long long kMaxPause = 1'000'000'000'000;  // us, ~11.6 days; the pause is cut to
                                                      // the deadline anyway
  const auto deadline = saturating_add(std::chrono::steady_clock::now(), options_.wait);
  const long long interval_ms = std::max<long long>(0, options_.retry_interval.count());
  const long long base = std::clamp<long long>(
      interval_ms > kMaxPause / 1000 ? kMaxPause : interval_ms * 1000, 1, kMaxPause);
  for (;;) {
    absl::StatusOr<bool> got = try_lock();
    if (!got.ok() || *got) return got;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    std::uniform_int_distribution<long long> jitter(base / 2, base + base / 2);
    const auto pause =
        std::min<std::chrono::steady_clock::duration>(microseconds(jitter(rng())), deadline - now);
    std::this_thread::sleep_for(pause);
  }
}

absl::Status RedisLock::unlock() {
  if (!held()) return absl::OkStatus();
  const std::string token = std::move(token_);
  token_.clear();
  const std::string_view args[] = {"EVAL", kReleaseScript, "1", key_, token};
  absl::StatusOr<long long> n = 0;
  absl::Status s = client_->command(
      args, [&](std::size_t, RedisReplyRef r) { n = integer_reply(r, "lock release"); },
      "lock release");
  if (!s.ok()) return s;
  if (!n.ok()) return n.status();
  if (*n == 0) {
    return absl::AbortedError(
        absl::StrCat("redis lock ", key_, ": lease had expired before release"));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> RedisLock::extend(std::chrono::milliseconds ttl) {
  if (!held()) return false;
  if (ttl.count() <= 0) return absl::InvalidArgumentError("RedisLock::extend: ttl must be > 0");
  const std::string px = std::to_string(ttl.count());
  const std::string_view args[] = {"EVAL", kExtendScript, "1", key_, token_, px};
  absl::StatusOr<long long> n = 0;
  absl::Status s = client_->command(
      args, [&](std::size_t, RedisReplyRef r) { n = integer_reply(r, "lock extend"); },
      "lock extend");
  if (!s.ok()) return s;
  if (!n.ok()) return n.status();
  if (*n == 0) {
    token_.clear();
    return false;
  }
  return true;
}

absl::StatusOr<bool> RedisLock::is_locked(RedisClient& client, std::string_view name) {
  const std::string key = client.options().key_prefix + std::string(name);
  const std::string_view args[] = {"EXISTS", key};
  absl::StatusOr<long long> n = 0;
  absl::Status s = client.command(
      args, [&](std::size_t, RedisReplyRef r) { n = integer_reply(r, "lock EXISTS"); },
      "lock EXISTS");
  if (!s.ok()) return s;
  if (!n.ok()) return n.status();
  return *n > 0;
}

}  // namespace larder
