// SPDX-License-Identifier: Apache-2.0
//
// RedisStore for the common <K, V>, compiled once (redis/store.h declares them
// `extern template`, so users' files do not instantiate them again).
#include <cstdint>
#include <string>

#include "larder/redis/store.h"

namespace larder {

template class RedisStore<std::string, std::string>;
template class RedisStore<std::int64_t, std::string>;

}  // namespace larder
