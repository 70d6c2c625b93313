// SPDX-License-Identifier: Apache-2.0
//
// The wire form of an Entry<V> in Redis: a fixed 18-byte header, then the
// value codec's bytes.
//
//   offset  size  field
//   0       1     magic 0xA7 (not printable text: a value somebody SET by hand
//                 as a string is rejected on its first byte)
//   1       1     format version (kRedisEntryVersion, now 1)
//   2       8     fresh_until, wall-clock ms since the Unix epoch, int64 LE
//   10      8     stale_until, same
//   18      ...   Codec<V>::encode bytes (the rest of the value)
//
// The Redis key itself expires at stale_until (SET ... PX), so Redis drops the
// entry when no process may use it any more; the header keeps fresh_until,
// which Redis has no notion of, and stale_until, so that a reader whose clock
// says the entry is past it (clock skew, or a ManualClock in tests) treats it
// as a miss without asking Redis for the TTL.
//
// Why a header in the value rather than a hash (HSET fresh/stale/value)? One
// GET / one MGET answers a lookup, MGET works on plain strings only, and SET
// with PX replaces value and expiry atomically.
//
// Decoding never throws: bytes of another version, truncated bytes or bytes
// written by someone else give kDataLoss, which RedisStore counts and logs as
// a miss. So does a header whose instants are not ones this process could
// have written: an instant outside what a TimePoint represents (about years
// 1678 to 2262, [kMinUnixMillis, kMaxUnixMillis] in larder/clock.h; one
// flipped high bit gets there), or fresh_until after stale_until. Everything
// to_unix_millis produces is in range, and RedisStore writes fresh_until <=
// stale_until, so only corruption or a foreign writer is refused. Converting
// an out-of-range instant would overflow (undefined behaviour, in practice a
// wrap to another century, so an entry long past stale_until would be
// served); checking here, before any conversion, keeps the store contract
// ("an entry past stale_until is never returned") for any bytes.
// No hiredis here: this header is tested without a server.
#ifndef LARDER_INTERNAL_REDIS_ENTRY_H_
#define LARDER_INTERNAL_REDIS_ENTRY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "larder/clock.h"
#include "larder/codec.h"

namespace larder::internal {

inline constexpr unsigned char kRedisEntryMagic = 0xA7;
inline constexpr unsigned char kRedisEntryVersion = 1;
inline constexpr std::size_t kRedisEntryHeaderSize = 18;

// RedisEntryHeader: the decoded header and a view of the codec's bytes.
struct RedisEntryHeader {
  std::int64_t fresh_until_ms = 0;
  std::int64_t stale_until_ms = 0;
  std::string_view payload;  // into the bytes given to decode_redis_entry
  // The same instants as TimePoints (decode_redis_entry checked that they
  // are representable and that fresh_until <= stale_until).
  TimePoint fresh_until{};
  TimePoint stale_until{};
};

// append_redis_entry_header: appends the 18-byte header to out.
inline void append_redis_entry_header(std::int64_t fresh_until_ms, std::int64_t stale_until_ms,
                                      std::string& out) {
  out.push_back(static_cast<char>(kRedisEntryMagic));
  out.push_back(static_cast<char>(kRedisEntryVersion));
  append_le(fresh_until_ms, out);
  append_le(stale_until_ms, out);
}

// decode_redis_entry: splits bytes into header and payload; kDataLoss when the
// bytes are not a larder entry of this version.
absl::StatusOr<RedisEntryHeader> decode_redis_entry(std::string_view bytes);

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_REDIS_ENTRY_H_
