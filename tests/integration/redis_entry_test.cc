// SPDX-License-Identifier: Apache-2.0
//
// The Redis parts that need no server: the entry encoding
// (internal/redis_entry.h), the hiredis-error-to-Status mapping
// (internal/redis_status.h) and SCAN glob escaping.
#include <hiredis/hiredis.h>

#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "larder/internal/redis_entry.h"
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
