// SPDX-License-Identifier: Apache-2.0
// Must NOT compile: a struct key has no default key codec (ctest
// compile_fail_struct_key checks the static_assert's message).
#include <cstdint>
#include <string>

#include "larder/codec.h"

struct Point {
  std::int32_t x, y;
};

int main() {
  std::string out;
  larder::DefaultKeyCodec<Point>::encode(Point{1, 2}, out);
  return static_cast<int>(out.size());
}
