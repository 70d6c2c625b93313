// SPDX-License-Identifier: Apache-2.0
//
// The Redis parts that need no server: the entry encoding
// (internal/redis_entry.h, including headers with impossible instants), the hiredis-error-to-Status
// mapping (internal/redis_status.h) and SCAN glob escaping.
#include "larder/internal/redis_entry.h"

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "larder/internal/redis_status.h"
#include "larder/redis.h"

namespace larder::internal {
namespace {

TEST(RedisEntryTest, HeaderRoundTripsAndPayloadFollows) {
  std::string v;
  append_redis_entry_header(1'700'000'000'123, 1'700'000'060'456, v);
  ASSERT_EQ(v.size(), kRedisEntryHeaderSize);
  EXPECT_EQ(static_cast<unsigned char>(v[0]), kRedisEntryMagic);
  EXPECT_EQ(v[1], 1);
  v += "payload";
  auto h = decode_redis_entry(v);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->fresh_until_ms, 1'700'000'000'123);
  EXPECT_EQ(h->stale_until_ms, 1'700'000'060'456);
  EXPECT_EQ(h->payload, "payload");
}

TEST(RedisEntryTest, InstantsAreLittleEndian) {
  std::string v;
  append_redis_entry_header(0x0102030405060708, 0x0102030405060709, v);
  EXPECT_EQ(v.substr(2, 8), std::string("\x08\x07\x06\x05\x04\x03\x02\x01", 8));
}

TEST(RedisEntryTest, RejectsWhatIsNotOursWithDataLoss) {
  std::string good;
  append_redis_entry_header(1, 2, good);
  std::string wrong_magic = good;
  wrong_magic[0] = 'L';
  std::string v2 = good;
  v2[1] = 2;
  std::string backwards;
  append_redis_entry_header(5, 4, backwards);
  for (const std::string& bad :
       {std::string(), std::string("hello"), good.substr(0, 17), wrong_magic, v2, backwards}) {
    auto h = decode_redis_entry(bad);
    ASSERT_FALSE(h.ok());
    EXPECT_EQ(h.status().code(), absl::StatusCode::kDataLoss) << h.status();
  }
  EXPECT_TRUE(decode_redis_entry(good).ok());  // empty payload is fine
}

// Instants a TimePoint cannot hold, and fresh_until > stale_until, are
// refused before anything converts them (issue 10): the store then counts and
// logs a miss. Everything in range decodes exactly.
TEST(RedisEntryTest, RejectsInstantsATimePointCannotHold) {
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  const std::int64_t now = 1'700'000'000'000;
  struct Case {
    std::int64_t fresh, stale;
    const char* field;  // the field the message must name; nullptr: decodes
  };
  const Case cases[] = {
      {kMin, now, "fresh_until"},
      {kMax, now, "fresh_until"},
      {kMinUnixMillis - 1, now, "fresh_until"},
      {kMaxUnixMillis + 1, kMaxUnixMillis + 1, "fresh_until"},
      {now, kMin, "stale_until"},
      {now, kMax, "stale_until"},
      {now, kMaxUnixMillis + 1, "stale_until"},
      {kMinUnixMillis - 1, kMinUnixMillis - 1, "fresh_until"},
      {now + 1, now, "after stale_until"},
      {0, -1, "after stale_until"},
      {-1, 0, nullptr},
      {0, 0, nullptr},
      {kMinUnixMillis, kMinUnixMillis, nullptr},
      {kMaxUnixMillis, kMaxUnixMillis, nullptr},
      {kMinUnixMillis, kMaxUnixMillis, nullptr},
      // The two bit flips of a header written at `now`.
      {static_cast<std::int64_t>(static_cast<std::uint64_t>(now) | (1ull << 63)), now + 60'000,
       "fresh_until"},
      {now, (now + 60'000) ^ (std::int64_t{1} << 43), "stale_until"},
  };
  for (const Case& c : cases) {
    std::string v;
    append_redis_entry_header(c.fresh, c.stale, v);
    v += "p";
    auto h = decode_redis_entry(v);
    SCOPED_TRACE(::testing::Message() << "fresh " << c.fresh << " stale " << c.stale);
    if (c.field == nullptr) {
      ASSERT_TRUE(h.ok()) << h.status();
      EXPECT_EQ(h->fresh_until, TimePoint(std::chrono::milliseconds(c.fresh)));
      EXPECT_EQ(h->stale_until, TimePoint(std::chrono::milliseconds(c.stale)));
      EXPECT_EQ(h->payload, "p");
      continue;
    }
    ASSERT_FALSE(h.ok());
    EXPECT_EQ(h.status().code(), absl::StatusCode::kDataLoss) << h.status();
    EXPECT_NE(h.status().message().find(c.field), std::string_view::npos) << h.status();
  }
}

// Property: any 16 header bytes either decode to instants in range and in
// order, equal to the bytes' values, or are refused with kDataLoss. Seeded;
// the seed is printed, LARDER_TEST_SEED repeats it.
TEST(RedisEntryTest, RandomHeaderBytesDecodeInRangeOrAreRefused) {
  std::uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("LARDER_TEST_SEED"); s != nullptr && *s != '\0') {
    seed = std::strtoull(s, nullptr, 10);
  }
  std::cout << "RandomHeaderBytesDecodeInRangeOrAreRefused: seed " << seed << "\n";
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 200'000; ++i) {
    std::string v;
    v.push_back(static_cast<char>(kRedisEntryMagic));
    v.push_back(static_cast<char>(kRedisEntryVersion));
    // Half the time random bytes; otherwise a plausible header, one bit flipped.
    std::uint64_t f = rng(), s = rng();
    if (i % 2 == 1) {
      f = 1'700'000'000'000ull + rng() % 100'000;
      s = f + rng() % 100'000;
      (rng() % 2 ? f : s) ^= 1ull << (rng() % 64);
    }
    append_le(f, v);
    append_le(s, v);
    auto h = decode_redis_entry(v);
    const auto fi = static_cast<std::int64_t>(f), si = static_cast<std::int64_t>(s);
    const bool valid = fi >= kMinUnixMillis && fi <= kMaxUnixMillis && si >= kMinUnixMillis &&
                       si <= kMaxUnixMillis && fi <= si;
    ASSERT_EQ(h.ok(), valid) << "fresh " << fi << " stale " << si << ": " << h.status();
    if (!h.ok()) {
      ASSERT_EQ(h.status().code(), absl::StatusCode::kDataLoss);
      continue;
    }
    ASSERT_LE(h->fresh_until, h->stale_until);
    ASSERT_EQ(to_unix_millis(h->fresh_until), fi);
    ASSERT_EQ(to_unix_millis(h->stale_until), si);
  }
}

TEST(RedisGlobTest, EscapesSpecials) {
  EXPECT_EQ(redis_glob_escape("a*b?c[d]e\\f:"), "a\\*b\\?c\\[d\\]e\\\\f:");
}

redisReply error_reply(const char* text) {
  redisReply r{};
  r.type = REDIS_REPLY_ERROR;
  r.str = const_cast<char*>(text);
  r.len = std::strlen(text);
  return r;
}

TEST(RedisStatusTest, ErrorRepliesMapToCodes) {
  auto code = [](const char* t) {
    redisReply r = error_reply(t);
    return status_from_redis(nullptr, &r, "X").code();
  };
  EXPECT_EQ(code("NOAUTH Authentication required."), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code("WRONGPASS invalid username-password pair"), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code("NOPERM this user has no permissions"), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code("LOADING Redis is loading the dataset in memory"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(code("BUSY Redis is busy running a script"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(code("WRONGTYPE Operation against a key"), absl::StatusCode::kInternal);
  redisReply ok{};
  ok.type = REDIS_REPLY_STATUS;
  EXPECT_TRUE(status_from_redis(nullptr, &ok, "X").ok());
}

TEST(RedisStatusTest, ConnectionErrorsMapToCodes) {
  redisContext c{};
  c.err = REDIS_ERR_IO;
  std::strcpy(c.errstr, "Connection refused");
  EXPECT_EQ(status_from_redis(&c, nullptr, "X").code(), absl::StatusCode::kUnavailable);
  std::strcpy(c.errstr, "Connection timed out");
  EXPECT_EQ(status_from_redis(&c, nullptr, "X").code(), absl::StatusCode::kDeadlineExceeded);
  std::strcpy(c.errstr, "Resource temporarily unavailable");
  EXPECT_EQ(status_from_redis(&c, nullptr, "X").code(), absl::StatusCode::kDeadlineExceeded);
  c.err = REDIS_ERR_EOF;
  std::strcpy(c.errstr, "Server closed the connection");
  EXPECT_EQ(status_from_redis(&c, nullptr, "X").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status_from_redis(nullptr, nullptr, "X").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(redis_timeout_status("GET", std::chrono::milliseconds(5)).code(),
            absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace larder::internal
