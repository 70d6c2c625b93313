// SPDX-License-Identifier: Apache-2.0
//
// The consumer test program: what a service that links larder::larder writes.
// Built by tests/consumers/{fetchcontent,find_package} and run by ctest.
#include <cstdio>
#include <string>

#include <larder/larder.h>

int main() {
  auto clock = std::make_shared<larder::ManualClock>();
  std::string bytes = larder::encode_to_string(std::string("consumer"));
  auto back = larder::decode_from<std::string>(bytes);
  if (!back.ok() || *back != "consumer") {
    std::fprintf(stderr, "codec round trip failed\n");
    return 1;
  }
  std::printf("larder %s consumer ok\n", larder::kVersionString);
  return 0;
}
