// SPDX-License-Identifier: Apache-2.0
//
// LocalStore for the common <K, V>, compiled once (the header declares them
// `extern template`, so users' files do not instantiate them again).
#include <cstdint>
#include <string>

#include "larder/local_store.h"

namespace larder {

template class LocalStore<std::string, std::string>;
template class LocalStore<std::int64_t, std::string>;

}  // namespace larder
