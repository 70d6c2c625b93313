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
// a miss. No hiredis here: this header is tested without a server.
#ifndef LARDER_INTERNAL_REDIS_ENTRY_H_
#define LARDER_INTERNAL_REDIS_ENTRY_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
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
inline absl::StatusOr<RedisEntryHeader> decode_redis_entry(std::string_view bytes) {
  if (bytes.size() < kRedisEntryHeaderSize) {
    return absl::DataLossError(absl::StrCat("redis entry: ", bytes.size(),
                                            " bytes, shorter than the ",
                                            kRedisEntryHeaderSize, "-byte header"));
  }
  if (static_cast<unsigned char>(bytes[0]) != kRedisEntryMagic) {
    return absl::DataLossError("redis entry: not written by larder (bad magic byte)");
  }
  if (static_cast<unsigned char>(bytes[1]) != kRedisEntryVersion) {
    return absl::DataLossError(absl::StrCat(
        "redis entry: format version ", static_cast<int>(static_cast<unsigned char>(bytes[1])),
        ", this build reads ", static_cast<int>(kRedisEntryVersion)));
  }
  RedisEntryHeader h;
  h.fresh_until_ms = read_le<std::int64_t>(bytes.data() + 2);
  h.stale_until_ms = read_le<std::int64_t>(bytes.data() + 10);
  if (h.fresh_until_ms > h.stale_until_ms) {
    return absl::DataLossError("redis entry: fresh_until after stale_until");
  }
  h.payload = bytes.substr(kRedisEntryHeaderSize);
  return h;
}

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_REDIS_ENTRY_H_
