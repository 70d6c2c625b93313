// SPDX-License-Identifier: Apache-2.0
//
// RedisStore reading entry headers it did not write (issue 10, part A): bytes
// written by another program or corrupted in Redis may hold any int64 in
// fresh_until and stale_until. An instant a TimePoint cannot hold, or
// fresh_until > stale_until, is a corrupt value: a counted (errors and
// misses), logged miss. Whatever get / get_many return is never past
// stale_until. Converting such instants used to overflow (UBSan in the asan
// preset aborts on it) and served entries centuries past stale_until.
//
// Needs a real redis-server (LARDER_TEST_REDIS_HOST / _PORT). The property
// test prints its seed; LARDER_TEST_SEED=<n> repeats a run.
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "gtest/gtest.h"
#include "larder/cache.h"
#include "larder/internal/mutex.h"
#include "larder/redis.h"
#include "tests/integration/redis_test_util.h"
#include "tests/testing/testing.h"

namespace larder {
namespace {

using std::chrono::milliseconds;
using Store = RedisStore<std::string, std::string>;

constexpr std::int64_t kI64Min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kI64Max = std::numeric_limits<std::int64_t>::max();
// The range of whole milliseconds a TimePoint holds, computed here rather
// than taken from clock.h, so the test states the expectation independently.
constexpr std::int64_t kMinMs =
    std::chrono::duration_cast<milliseconds>(TimePoint::min().time_since_epoch()).count();
constexpr std::int64_t kMaxMs =
    std::chrono::duration_cast<milliseconds>(TimePoint::max().time_since_epoch()).count();
constexpr std::int64_t kNow = 1'700'000'000'000;  // the ManualClock's time, ms

// LogSink: counts what the store logs.
struct LogSink {
  internal::Mutex mu;
  std::vector<std::string> lines ABSL_GUARDED_BY(mu);
  RedisLogHook hook() {
    return [this](RedisLogLevel, std::string_view m) {
      internal::MutexLock l(&mu);
      lines.emplace_back(m);
    };
  }
  std::vector<std::string> take() {
    internal::MutexLock l(&mu);
    return std::exchange(lines, {});
  }
};

// Raw access to the server, around the store.
std::string raw_get(RedisClient& c, const std::string& key) {
  const std::string_view args[] = {"GET", key};
  std::string out;
  absl::Status s = c.command(
      args, [&](std::size_t, RedisReplyRef r) { out = r.str(); }, "GET");
  EXPECT_TRUE(s.ok()) << s;
  return out;
}
void raw_set(RedisClient& c, const std::string& key, const std::string& value) {
  const std::string_view args[] = {"SET", key, value};
  absl::Status reply;
  absl::Status s = c.command(
      args, [&](std::size_t, RedisReplyRef r) { reply = r.status("SET"); }, "SET");
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(reply.ok()) << reply;
}

// value_with_header: a larder entry (magic, version 1, the two instants,
// little-endian) followed by payload, built byte by byte as the format says.
std::string value_with_header(std::int64_t fresh, std::int64_t stale, std::string_view payload) {
  std::string v;
  v.push_back(static_cast<char>(0xA7));
  v.push_back(1);
  for (std::int64_t x : {fresh, stale}) {
    const auto u = static_cast<std::uint64_t>(x);
    for (int i = 0; i < 8; ++i) v.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
  }
  v.append(payload);
  return v;
}

enum class Want { kCorrupt, kExpired, kHit };

const char* name_of(Want w) {
  switch (w) {
    case Want::kCorrupt:
      return "corrupt";
    case Want::kExpired:
      return "expired";
    case Want::kHit:
      return "hit";
  }
  return "?";
}

// model: what the store must make of a header, the clock reading now_ms.
Want model(std::int64_t fresh, std::int64_t stale, std::int64_t now_ms) {
  if (fresh < kMinMs || fresh > kMaxMs || stale < kMinMs || stale > kMaxMs) return Want::kCorrupt;
  if (fresh > stale) return Want::kCorrupt;
  if (stale <= now_ms) return Want::kExpired;
  return Want::kHit;
}

struct Case {
  std::string what;
  std::int64_t fresh;
  std::int64_t stale;
};

struct Fixture {
  explicit Fixture(const testing::RedisAddress& addr, std::int64_t now_ms = kNow)
      : clock(std::make_shared<ManualClock>(TimePoint(milliseconds(now_ms)))) {
    RedisOptions o = testing::options_for(addr);
    o.clock = clock;
    o.log = sink.hook();
    store = std::make_shared<Store>(o);
  }
  ~Fixture() { EXPECT_TRUE(store->clear().ok()); }
  std::shared_ptr<ManualClock> clock;
  LogSink sink;
  std::shared_ptr<Store> store;
};

// check_cases: writes every case under its own key, reads each through get
// and then all through get_many, and checks each result and the counters
// against the model. Returns how many cases were corrupt, expired and hits.
std::array<std::size_t, 3> check_cases(Fixture& f, const std::vector<Case>& cases,
                                       std::int64_t now_ms) {
  RedisClient& c = *f.store->client();
  std::vector<std::string> keys;
  std::size_t corrupt = 0, expired = 0, hits = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    keys.push_back("k" + std::to_string(i));
    raw_set(c, f.store->redis_key(keys.back()),
            value_with_header(cases[i].fresh, cases[i].stale, "payload " + std::to_string(i)));
    switch (model(cases[i].fresh, cases[i].stale, now_ms)) {
      case Want::kCorrupt:
        ++corrupt;
        break;
      case Want::kExpired:
        ++expired;
        break;
      case Want::kHit:
        ++hits;
        break;
    }
  }
  const StoreCounters before = f.store->counters();
  f.sink.take();

  auto check_one = [&](std::size_t i, const std::optional<Entry<std::string>>& got,
                       const char* via) {
    const Case& k = cases[i];
    const Want want = model(k.fresh, k.stale, now_ms);
    SCOPED_TRACE(::testing::Message()
                 << via << " case " << i << " (" << k.what << "): fresh " << k.fresh << " stale "
                 << k.stale << " now " << now_ms << ", want " << name_of(want));
    ASSERT_EQ(got.has_value(), want == Want::kHit);
    if (!got) return;
    // The store contract: what comes back is not past stale_until, and in order.
    EXPECT_LE(got->fresh_until, got->stale_until);
    EXPECT_GT(got->stale_until, f.clock->now());
    EXPECT_EQ(got->fresh_until, TimePoint(milliseconds(k.fresh)));
    EXPECT_EQ(got->stale_until, TimePoint(milliseconds(k.stale)));
    EXPECT_EQ(got->value, "payload " + std::to_string(i));
  };

  for (std::size_t i = 0; i < cases.size(); ++i) {
    absl::StatusOr<std::optional<Entry<std::string>>> got = f.store->get(keys[i]);
    EXPECT_TRUE(got.ok()) << got.status();
    if (got.ok()) check_one(i, *got, "get");
  }
  StoreCounters after = f.store->counters();
  EXPECT_EQ(after.errors - before.errors, corrupt) << "get: every corrupt header is an error";
  EXPECT_EQ(after.misses - before.misses, corrupt + expired) << "get: and a miss";
  EXPECT_EQ(after.hits - before.hits, hits);
  EXPECT_EQ(after.expirations - before.expirations, expired);
  EXPECT_EQ(f.sink.take().size(), corrupt) << "get: every corrupt header is logged";

  absl::StatusOr<std::vector<std::optional<Entry<std::string>>>> many = f.store->get_many(keys);
  EXPECT_TRUE(many.ok()) << many.status();
  EXPECT_TRUE(!many.ok() || many->size() == cases.size());
  for (std::size_t i = 0; many.ok() && i < many->size(); ++i) check_one(i, (*many)[i], "get_many");
  const StoreCounters last = f.store->counters();
  EXPECT_EQ(last.errors - after.errors, corrupt) << "get_many: every corrupt header is an error";
  EXPECT_EQ(last.misses - after.misses, corrupt + expired) << "get_many: and a miss";
  EXPECT_EQ(last.hits - after.hits, hits);
  EXPECT_EQ(last.expirations - after.expirations, expired);
  EXPECT_EQ(f.sink.take().size(), corrupt) << "get_many: every corrupt header is logged";
  return {corrupt, expired, hits};
}

// The reproduction: "hello world" written through the store, then one
// bit flipped in the stored header.
TEST(RedisStoreDecodeTest, OneFlippedBitInAnInstantIsACountedLoggedMiss) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  Fixture f(addr);
  RedisClient& c = *f.store->client();
  const TimePoint now = f.clock->now();
  ASSERT_TRUE(f.store
                  ->put("hello", Entry<std::string>{"hello world", now + std::chrono::seconds(30),
                                                    now + std::chrono::seconds(60)})
                  .ok());
  const std::string good = raw_get(c, f.store->redis_key("hello"));
  ASSERT_EQ(good.size(), 18u + 11u);

  std::string fresh_flip = good;
  fresh_flip[9] = static_cast<char>(static_cast<unsigned char>(fresh_flip[9]) | 0x80);  // bit 63
  std::string stale_flip = good;
  ASSERT_EQ(stale_flip[15], 0x01);  // 1.7e12 ms = 0x0000018B'CFE5'6800 + 60 s
  stale_flip[15] = 0x09;            // bit 43: stale_until ~1.05e13 ms, after 2262
  raw_set(c, f.store->redis_key("fresh-flip"), fresh_flip);
  raw_set(c, f.store->redis_key("stale-flip"), stale_flip);
  f.sink.take();

  const std::vector<std::string> bad{"fresh-flip", "stale-flip"};
  for (const std::string& k : bad) {
    absl::StatusOr<std::optional<Entry<std::string>>> got = f.store->get(k);
    ASSERT_TRUE(got.ok()) << k << ": " << got.status();
    EXPECT_FALSE(got->has_value()) << k << ": an entry with an impossible instant was served";
  }
  EXPECT_EQ(f.store->counters().errors, 2u);
  EXPECT_EQ(f.store->counters().misses, 2u);
  EXPECT_EQ(f.store->counters().hits, 0u);
  const std::vector<std::string> logged = f.sink.take();
  ASSERT_EQ(logged.size(), 2u);
  EXPECT_NE(logged[0].find("fresh-flip"), std::string::npos) << logged[0];
  EXPECT_NE(logged[0].find("fresh_until"), std::string::npos) << logged[0];
  EXPECT_NE(logged[1].find("stale_until"), std::string::npos) << logged[1];

  std::vector<std::string> all = bad;
  all.push_back("hello");
  auto many = f.store->get_many(all);
  ASSERT_TRUE(many.ok()) << many.status();
  EXPECT_FALSE((*many)[0].has_value());
  EXPECT_FALSE((*many)[1].has_value());
  ASSERT_TRUE((*many)[2].has_value());
  EXPECT_EQ((*many)[2]->value, "hello world");
  EXPECT_EQ(f.store->counters().errors, 4u);
  EXPECT_EQ(f.store->counters().misses, 4u);
  EXPECT_EQ(f.store->counters().hits, 1u);
  EXPECT_EQ(f.sink.take().size(), 2u);
}

// Each header field at the int64 extremes, at -1 and 0, just inside and just
// outside a TimePoint's range, and out of order with the other field. A
// fresh_until of -1 or 0 (before 1970) with a stale_until still ahead is a
// valid stale entry (a ManualClock starts at the epoch), so it is served; a
// stale_until of -1 or 0 is past, or before fresh_until: a miss either way.
TEST(RedisStoreDecodeTest, ExtremeInstantsInEitherFieldAreCountedMisses) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  Fixture f(addr);
  const std::int64_t fresh = kNow + 30'000, stale = kNow + 60'000;
  const std::vector<Case> cases = {
      // fresh_until varies, stale_until ahead of now
      {"fresh INT64_MIN", kI64Min, stale},
      {"fresh INT64_MAX", kI64Max, stale},
      {"fresh -1", -1, stale},
      {"fresh 0", 0, stale},
      {"fresh min-1", kMinMs - 1, stale},
      {"fresh min", kMinMs, stale},
      {"fresh > stale", stale + 1, stale},
      {"fresh max+1", kMaxMs + 1, stale},
      {"fresh bit 63", static_cast<std::int64_t>(static_cast<std::uint64_t>(fresh) | (1ull << 63)),
       stale},
      // stale_until varies, fresh_until ahead of now
      {"stale INT64_MIN", fresh, kI64Min},
      {"stale INT64_MAX", fresh, kI64Max},
      {"stale -1", fresh, -1},
      {"stale 0", fresh, 0},
      {"stale < fresh", fresh, fresh - 1},
      {"stale max", fresh, kMaxMs},
      {"stale max+1", fresh, kMaxMs + 1},
      {"stale bit 43", fresh, stale ^ (std::int64_t{1} << 43)},
      // both
      {"both INT64_MIN", kI64Min, kI64Min},
      {"both INT64_MAX", kI64Max, kI64Max},
      {"both -1", -1, -1},
      {"both 0", 0, 0},
      {"both min", kMinMs, kMinMs},
      {"both max", kMaxMs, kMaxMs},
      {"INT64_MIN..INT64_MAX", kI64Min, kI64Max},
      {"INT64_MAX..INT64_MIN", kI64Max, kI64Min},
      {"stale == now", fresh - 60'000, kNow},
      {"valid", fresh, stale},
  };
  // The expectations the issue spells out, beyond the model.
  for (const Case& k : cases) {
    const bool extreme = k.fresh == kI64Min || k.fresh == kI64Max || k.stale == kI64Min ||
                         k.stale == kI64Max || k.fresh > k.stale;
    if (extreme) {
      EXPECT_EQ(model(k.fresh, k.stale, kNow), Want::kCorrupt) << k.what;
    }
  }
  check_cases(f, cases, kNow);
}

// Property: random header bytes, written straight into Redis. Whatever get and
// get_many return has fresh_until <= stale_until and stale_until > now, and
// each outcome (hit, expired, corrupt) and counter matches the model. Several
// clock readings, including ones near the ends of a TimePoint's range.
TEST(RedisStoreDecodeTest, RandomHeadersNeverServeAnEntryPastStaleUntil) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  std::uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("LARDER_TEST_SEED"); s != nullptr && *s != '\0') {
    seed = std::strtoull(s, nullptr, 10);
  }
  std::cout << "RandomHeadersNeverServeAnEntryPastStaleUntil: seed " << seed
            << " (LARDER_TEST_SEED=" << seed << " repeats it)\n";
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  auto u64 = [&] { return rng(); };
  auto pick = [&](std::uint64_t n) { return static_cast<std::size_t>(rng() % n); };

  std::array<std::size_t, 3> total{};
  for (const std::int64_t now_ms : {kNow, std::int64_t{0}, kMinMs + 5'000, kMaxMs - 5'000}) {
    SCOPED_TRACE(::testing::Message() << "now " << now_ms);
    Fixture f(addr, now_ms);
    const std::int64_t specials[] = {
        kI64Min,    kI64Min + 1, -1,         0,           1,       kMinMs - 1, kMinMs, kMinMs + 1,
        kMaxMs - 1, kMaxMs,      kMaxMs + 1, kI64Max - 1, kI64Max, now_ms - 1, now_ms, now_ms + 1};
    // An instant near now, or a special value, or any 64 bits.
    auto instant = [&]() -> std::int64_t {
      switch (pick(4)) {
        case 0:
          return static_cast<std::int64_t>(u64());
        case 1:
          return specials[pick(std::size(specials))];
        default: {
          const std::int64_t d = static_cast<std::int64_t>(pick(200'001)) - 100'000;
          // now_ms +- 100 s, kept inside int64 (now is at least 5 s inside a TimePoint).
          if (d > 0 && now_ms > kI64Max - d) return kI64Max;
          if (d < 0 && now_ms < kI64Min - d) return kI64Min;
          return now_ms + d;
        }
      }
    };
    std::vector<Case> cases;
    for (int i = 0; i < 400; ++i) {
      std::int64_t fresh = instant(), stale = instant();
      if (pick(4) == 0) {
        // A header this store would write, with one random bit of it flipped.
        fresh = now_ms + static_cast<std::int64_t>(pick(60'000));
        stale = fresh + static_cast<std::int64_t>(pick(60'000));
        if (fresh > kMaxMs) fresh = kMaxMs;
        if (stale > kMaxMs) stale = kMaxMs;
        const unsigned bit = static_cast<unsigned>(pick(128));
        std::int64_t& field = bit < 64 ? fresh : stale;
        field = static_cast<std::int64_t>(static_cast<std::uint64_t>(field) ^ (1ull << (bit % 64)));
      }
      cases.push_back({"random", fresh, stale});
    }
    const std::array<std::size_t, 3> seen = check_cases(f, cases, now_ms);
    for (std::size_t i = 0; i < seen.size(); ++i) total[i] += seen[i];
    if (::testing::Test::HasFailure()) return;
  }
  // The generator reaches all three outcomes (else the property says little).
  EXPECT_GT(total[0], 0u) << "no corrupt header generated";
  EXPECT_GT(total[1], 0u) << "no expired header generated";
  EXPECT_GT(total[2], 0u) << "no servable header generated";
  std::cout << "corrupt " << total[0] << ", expired " << total[1] << ", served " << total[2]
            << "\n";
}

// Cache::get_many_aligned over a real server: 40 keys in MGET chunks of 7,
// one of them corrupted in Redis. Its slot is loaded (the store counts the
// corrupt value as an error and a miss, in the batch read and again in the
// leader's re-read) and stored over the bad bytes; every other slot is a hit.
// A second, smaller batch with a repeat, after the larger one, reads the
// right keys (the store's per-thread key scratch is reused between calls).
TEST(RedisStoreDecodeTest, CacheBatchInKeyOrderLoadsACorruptValueInItsSlot) {
  LARDER_REQUIRE_REDIS_OR_SKIP(addr);
  RedisOptions o = testing::options_for(addr);
  o.clock = std::make_shared<ManualClock>(TimePoint(milliseconds(kNow)));
  o.batch_chunk = 7;
  auto store = std::make_shared<Store>(o);
  CacheOptions<std::string, std::string> co;
  co.ttl = std::chrono::seconds(30);
  Cache<std::string, std::string> cache(store, co);
  std::vector<std::string> keys;
  for (int i = 0; i < 40; ++i) {
    keys.push_back("b" + std::to_string(i));
    ASSERT_TRUE(cache.put(keys.back(), "v" + std::to_string(i)).ok());
  }
  raw_set(*store->client(), store->redis_key("b17"), "not a larder entry");
  std::vector<std::string> loaded;
  auto load = [&loaded](std::span<const std::string> ks) {
    absl::flat_hash_map<std::string, std::string> m;
    for (const std::string& k : ks) {
      loaded.push_back(k);
      m[k] = "db:" + k;
    }
    return m;
  };
  GetManyAlignedResult<std::string> got = cache.get_many_aligned(keys, load);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got.size(), keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(got[i], i == 17 ? "db:b17" : "v" + std::to_string(i)) << keys[i];
  }
  EXPECT_EQ(loaded, std::vector<std::string>{"b17"});
  EXPECT_EQ(store->counters().errors, 2u);
  EXPECT_EQ(cache.stats().hits, 39u);
  EXPECT_EQ(cache.stats().misses, 1u);

  const std::vector<std::string> few{"b39", "b3", "b17", "b3"};
  GetManyAlignedResult<std::string> again = cache.get_many_aligned(few, load);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again.values(), (std::vector<std::optional<std::string>>{"v39", "v3", "db:b17", "v3"}));
  EXPECT_EQ(loaded.size(), 1u) << "b17's loaded value was stored over the corrupt bytes";
  EXPECT_EQ(store->counters().errors, 2u);
  EXPECT_TRUE(store->clear().ok());
}

}  // namespace
}  // namespace larder
