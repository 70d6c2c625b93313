// SPDX-License-Identifier: Apache-2.0
//
// The child of pg_write_back_crash_test: records views of products 1..50
// through the catalog's write-back (journal at argv[3]) forever, printing
// "B id" before each record_view and "A id" once it was acknowledged. The
// test SIGKILLs it at a random moment.
// argv: conninfo search_path journal seed
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "catalog.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s conninfo search_path journal seed\n", argv[0]);
    return 2;
  }
  catalog::CatalogOptions o{.conninfo = argv[1], .search_path = argv[2], .pool_size = 2};
  o.views_journal = argv[3];
  o.views_write_delay = std::chrono::milliseconds(2);
  catalog::Catalog cat(o);
  std::mt19937_64 rng(std::strtoull(argv[4], nullptr, 10));
  for (;;) {
    const std::int64_t id = 1 + static_cast<std::int64_t>(rng() % 50);
    std::printf("B %lld\n", static_cast<long long>(id));
    std::fflush(stdout);
    const absl::Status s = cat.record_view(id);
    if (!s.ok()) {
      std::fprintf(stderr, "record_view: %s\n", s.ToString().c_str());
      return 1;
    }
    std::printf("A %lld\n", static_cast<long long>(id));
    std::fflush(stdout);
  }
}
