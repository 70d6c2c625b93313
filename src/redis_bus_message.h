// SPDX-License-Identifier: Apache-2.0
//
// Private to src/: the payload of one invalidation published by
// RedisInvalidationBus (src/redis_invalidation_bus.cc). Not installed; kept
// in a header of its own, without hiredis, so that its fuzz target
// (tests/fuzz/fuzz_bus_message.cc) reaches the exact code the subscriber runs.
//
//   offset  size  field
//   0       5     magic "\0LDR1" (a NUL first: no text key starts with it)
//   5       8     origin, u64 little-endian (kNoOrigin: none)
//   13      1     kind: 'k' one key, 'c' clear everything
//   14      ...   the key's bytes (empty for 'c')
//
// Anything else on the channel (a database trigger's PUBLISH of a bare key,
// a message of another version) is a key with no origin, taken whole: the
// receiving side invalidates more, never less. decode_bus_message accepts
// any bytes; for bytes that parsed as a message, encode_bus_message gives
// them back exactly.
#ifndef LARDER_SRC_REDIS_BUS_MESSAGE_H_
#define LARDER_SRC_REDIS_BUS_MESSAGE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "larder/codec.h"
#include "larder/invalidation_bus.h"

namespace larder::internal {

inline constexpr std::string_view kBusMagic("\0LDR1", 5);
inline constexpr std::size_t kBusHeader = kBusMagic.size() + 8 + 1;
inline constexpr char kBusKindKey = 'k';
inline constexpr char kBusKindClear = 'c';

inline std::string encode_bus_message(InvalidationBus::Origin origin, char kind,
                                      std::string_view key) {
  std::string out;
  out.reserve(kBusHeader + key.size());
  out.append(kBusMagic);
  append_le(origin, out);
  out.push_back(kind);
  out.append(key);
  return out;
}

struct BusMessage {
  InvalidationBus::Origin origin = InvalidationBus::kNoOrigin;
  char kind = kBusKindKey;
  std::string_view key;  // into the payload given to decode_bus_message
  bool framed = false;   // had larder's header (false: bare key bytes)
};

inline BusMessage decode_bus_message(std::string_view payload) {
  BusMessage m;
  if (payload.size() >= kBusHeader && payload.substr(0, kBusMagic.size()) == kBusMagic &&
      (payload[kBusHeader - 1] == kBusKindKey || payload[kBusHeader - 1] == kBusKindClear)) {
    m.origin = read_le<std::uint64_t>(payload.data() + kBusMagic.size());
    m.kind = payload[kBusHeader - 1];
    m.key = payload.substr(kBusHeader);
    m.framed = true;
  } else {
    m.key = payload;  // bare key bytes from another system
  }
  return m;
}

}  // namespace larder::internal

#endif  // LARDER_SRC_REDIS_BUS_MESSAGE_H_
