// SPDX-License-Identifier: Apache-2.0
//
// errno_text: the message for an errno value, thread-safe (std::strerror may
// return a buffer that another thread's call overwrites). Works with either
// strerror_r: the GNU one returning char*, or the XSI one returning int.
#ifndef LARDER_INTERNAL_ERRNO_TEXT_H_
#define LARDER_INTERNAL_ERRNO_TEXT_H_

#include <string.h>

#include <string>

namespace larder::internal {

namespace errno_detail {
inline const char* pick(const char* gnu_result, const char* /*buf*/) { return gnu_result; }
inline const char* pick(int xsi_result, const char* buf) {
  return xsi_result == 0 ? buf : "unknown error";
}
}  // namespace errno_detail

inline std::string errno_text(int err) {
  char buf[256] = {};
  return std::string(errno_detail::pick(strerror_r(err, buf, sizeof buf), buf));
}

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_ERRNO_TEXT_H_
