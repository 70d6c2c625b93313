// SPDX-License-Identifier: Apache-2.0
//
// TieredStore for the common <K, V>, compiled once (the header declares them
// `extern template`, so users' files do not instantiate them again).
#include <cstdint>
#include <string>

#include "larder/tiered_store.h"

namespace larder {

template class TieredStore<std::string, std::string>;
template class TieredStore<std::int64_t, std::string>;

}  // namespace larder
