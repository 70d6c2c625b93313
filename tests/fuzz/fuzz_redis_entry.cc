// SPDX-License-Identifier: Apache-2.0
//
// Fuzz target: a value read from Redis, as RedisStore decodes it: the 18-byte
// entry header (internal/redis_entry.h), then the payload through one of the
// built-in codecs (larder/codec.h). Input: one byte choosing the codec, then
// the value's bytes.
//
// Properties beyond "no crash, no UB":
//   * the header round-trips: a decoded header re-encoded, followed by the
//     payload, gives the input back; its instants are in range, ordered, and
//     convert to TimePoints and back exactly;
//   * every codec round-trips: where decode succeeds, encode(decode(x)) == x
//     (each built-in codec has exactly one encoding per value).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "larder/clock.h"
#include "larder/codec.h"
#include "larder/internal/redis_entry.h"

namespace {

enum class Level : std::int16_t { kLow = -1, kHigh = 300 };
enum Plain : std::uint32_t { kPlainA, kPlainB };
struct Pod {
  std::int32_t a;
  std::uint16_t b;
  std::uint16_t c;
  double d;
};

}  // namespace

template <>
inline constexpr bool larder::kBytewiseCodec<Pod> = true;

namespace {

template <class T>
void round_trip(std::string_view payload) {
  absl::StatusOr<T> v = larder::Codec<T>::decode(payload);
  if (!v.ok()) {
    FUZZ_CHECK(v.status().code() == absl::StatusCode::kDataLoss);
    return;
  }
  std::string again;
  larder::Codec<T>::encode(*v, again);
  FUZZ_CHECK(again == payload);
}

void decode_payload(std::uint8_t which, std::string_view payload) {
  switch (which % 19) {
    case 0:
      return round_trip<std::string>(payload);
    case 1:
      return round_trip<bool>(payload);
    case 2:
      return round_trip<std::int8_t>(payload);
    case 3:
      return round_trip<std::uint16_t>(payload);
    case 4:
      return round_trip<std::int32_t>(payload);
    case 5:
      return round_trip<std::uint32_t>(payload);
    case 6:
      return round_trip<std::int64_t>(payload);
    case 7:
      return round_trip<std::uint64_t>(payload);
    case 8:
      return round_trip<float>(payload);
    case 9:
      return round_trip<double>(payload);
    case 10:
      return round_trip<Level>(payload);
    case 11:
      return round_trip<Plain>(payload);
    case 12:
      return round_trip<Pod>(payload);
    case 13:
      return round_trip<std::vector<std::int32_t>>(payload);
    case 14:
      return round_trip<std::vector<double>>(payload);
    case 15:
      return round_trip<std::vector<std::uint8_t>>(payload);
    case 16:
      return round_trip<std::shared_ptr<const std::string>>(payload);
    case 17:
      return round_trip<std::shared_ptr<const std::int64_t>>(payload);
    default:
      return round_trip<std::shared_ptr<const bool>>(payload);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  larder::fuzz::Input in(data, size);
  const std::uint8_t which = in.byte();
  const std::string_view bytes = in.rest();

  // The codecs alone (a journal record's key and value are codec bytes too).
  decode_payload(which, bytes);

  // The Redis entry: header, then the codec.
  absl::StatusOr<larder::internal::RedisEntryHeader> h =
      larder::internal::decode_redis_entry(bytes);
  if (!h.ok()) {
    FUZZ_CHECK(h.status().code() == absl::StatusCode::kDataLoss);
    return 0;
  }
  FUZZ_CHECK(h->fresh_until_ms <= h->stale_until_ms);
  FUZZ_CHECK(h->fresh_until_ms >= larder::kMinUnixMillis &&
             h->stale_until_ms <= larder::kMaxUnixMillis);
  FUZZ_CHECK(larder::to_unix_millis(h->fresh_until) == h->fresh_until_ms);
  FUZZ_CHECK(larder::to_unix_millis(h->stale_until) == h->stale_until_ms);
  FUZZ_CHECK(h->fresh_until <= h->stale_until);
  std::string again;
  larder::internal::append_redis_entry_header(h->fresh_until_ms, h->stale_until_ms, again);
  again.append(h->payload);
  FUZZ_CHECK(again == bytes);
  decode_payload(which, h->payload);
  return 0;
}
