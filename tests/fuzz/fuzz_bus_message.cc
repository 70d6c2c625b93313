// SPDX-License-Identifier: Apache-2.0
//
// Fuzz target: a payload on the invalidation bus's channel, as the
// subscriber decodes it (src/redis_bus_message.h). Anybody who can PUBLISH
// on the channel writes these bytes.
//
// Properties: any bytes decode (to a framed message or a bare key); a framed
// message re-encodes to exactly the input; a bare key is the whole input,
// with no origin; the key view lies inside the payload.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "redis_bus_message.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  const larder::internal::BusMessage m = larder::internal::decode_bus_message(payload);
  FUZZ_CHECK(m.key.data() >= payload.data() &&
             m.key.data() + m.key.size() <= payload.data() + payload.size());
  if (m.framed) {
    FUZZ_CHECK(m.kind == larder::internal::kBusKindKey ||
               m.kind == larder::internal::kBusKindClear);
    FUZZ_CHECK(larder::internal::encode_bus_message(m.origin, m.kind, m.key) == payload);
  } else {
    FUZZ_CHECK(m.key == payload);
    FUZZ_CHECK(m.origin == larder::InvalidationBus::kNoOrigin);
    FUZZ_CHECK(m.kind == larder::internal::kBusKindKey);
  }
  // And what a publisher makes of the key decodes back to it.
  const std::string enc =
      larder::internal::encode_bus_message(7, larder::internal::kBusKindKey, payload);
  const larder::internal::BusMessage back = larder::internal::decode_bus_message(enc);
  FUZZ_CHECK(back.framed && back.origin == 7 && back.key == payload);
  return 0;
}
