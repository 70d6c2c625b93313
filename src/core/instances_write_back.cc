// SPDX-License-Identifier: Apache-2.0
//
// WriteBack for the common <K, V>, compiled once (the header declares them
// `extern template`, so users' files do not instantiate them again).
#include <cstdint>
#include <string>

#include "larder/internal/write_back.h"

namespace larder::internal {

template class WriteBack<std::string, std::string>;
template class WriteBack<std::int64_t, std::string>;

}  // namespace larder::internal
