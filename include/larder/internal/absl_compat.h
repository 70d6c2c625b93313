// SPDX-License-Identifier: Apache-2.0
//
// Bridges between the standard library and the abseil larder is built with.
//
// Debian 12's abseil (20220623) is configured with its own absl::string_view
// (ABSL_USES_STD_STRING_VIEW is 0), so a std::string_view does not convert to
// the absl::string_view that absl::StrCat, absl::StrContains and the
// absl::Status constructors take. larder's public API speaks std::string_view;
// av() crosses over, at no cost, wherever a std::string_view meets abseil.
#ifndef LARDER_INTERNAL_ABSL_COMPAT_H_
#define LARDER_INTERNAL_ABSL_COMPAT_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace larder::internal {

inline absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_ABSL_COMPAT_H_
