// SPDX-License-Identifier: Apache-2.0
//
// decode_redis_entry (internal/redis_entry.h has the format): bytes only, no
// hiredis, so it is compiled once in larder::core (the fuzzer links only that).
#include "larder/internal/redis_entry.h"

namespace larder::internal {

absl::StatusOr<RedisEntryHeader> decode_redis_entry(std::string_view bytes) {
  if (bytes.size() < kRedisEntryHeaderSize) {
    return absl::DataLossError(absl::StrCat("redis entry: ", bytes.size(),
                                            " bytes, shorter than the ", kRedisEntryHeaderSize,
                                            "-byte header"));
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
  const std::optional<TimePoint> fresh = from_unix_millis_checked(h.fresh_until_ms);
  const std::optional<TimePoint> stale = from_unix_millis_checked(h.stale_until_ms);
  if (!fresh || !stale) {
    return absl::DataLossError(
        absl::StrCat("redis entry: ", !fresh ? "fresh_until " : "stale_until ",
                     !fresh ? h.fresh_until_ms : h.stale_until_ms,
                     " ms is outside the instants a TimePoint holds [", kMinUnixMillis, ", ",
                     kMaxUnixMillis, "]"));
  }
  if (h.fresh_until_ms > h.stale_until_ms) {
    return absl::DataLossError(absl::StrCat("redis entry: fresh_until ", h.fresh_until_ms,
                                            " ms is after stale_until ", h.stale_until_ms, " ms"));
  }
  h.fresh_until = *fresh;
  h.stale_until = *stale;
  h.payload = bytes.substr(kRedisEntryHeaderSize);
  return h;
}

}  // namespace larder::internal
