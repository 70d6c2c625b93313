// SPDX-License-Identifier: Apache-2.0
//
// Cache and its core (CacheCore, Recovery, Loads, Refresher, Writes, and the
// slow paths of a read with the bound loader) for the common <K, V>, compiled
// once (cache_impl.h and cache_core.h declare them `extern template`, so
// users' files do not instantiate them again).
#include <cstdint>
#include <string>

#include "larder/cache.h"

namespace larder {

template class Cache<std::string, std::string>;
template class Cache<std::int64_t, std::string>;

namespace internal {

LARDER_INTERNAL_CACHE_CORE_INSTANCES(, std::string, std::string);
LARDER_INTERNAL_CACHE_CORE_INSTANCES(, std::int64_t, std::string);

}  // namespace internal
}  // namespace larder
