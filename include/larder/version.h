// SPDX-License-Identifier: Apache-2.0
//
// larder's version, in one place. CMake reads the three LARDER_VERSION_*
// macros below to set the project version, so bump them here and nowhere else.
#ifndef LARDER_VERSION_H_
#define LARDER_VERSION_H_

#define LARDER_VERSION_MAJOR 0
#define LARDER_VERSION_MINOR 2
#define LARDER_VERSION_PATCH 0

#define LARDER_VERSION_STRING "0.2.0"

namespace larder {
inline constexpr int kVersionMajor = LARDER_VERSION_MAJOR;
inline constexpr int kVersionMinor = LARDER_VERSION_MINOR;
inline constexpr int kVersionPatch = LARDER_VERSION_PATCH;
inline constexpr const char* kVersionString = LARDER_VERSION_STRING;
}  // namespace larder

#endif  // LARDER_VERSION_H_
