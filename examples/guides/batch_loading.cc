// SPDX-License-Identifier: Apache-2.0
// docs/guides/batch-loading.md: get_many against the N+1 query pattern.
#include <larder/larder.h>

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "guide.h"

using guide::ensure;
using namespace std::chrono_literals;

// snippet:batch_loading:begin
struct ProductDb {  // SELECT ... WHERE id = ANY($1): one round trip for many ids
  bool down = false;
  int queries = 0;
  absl::StatusOr<absl::flat_hash_map<int64_t, std::string>> load(std::span<const int64_t> ids) {
    ++queries;
    if (down) return absl::UnavailableError("database down");
    absl::flat_hash_map<int64_t, std::string> rows;
    for (int64_t id : ids) {
      if (id != 13) rows.emplace(id, "product-" + std::to_string(id));  // 13 was deleted
    }
    return rows;
  }
};

void batch_loading(ProductDb& db) {
  auto clock = std::make_shared<larder::ManualClock>();  // time moves only when told
  auto products = larder::make_local_cache<int64_t, std::string>(
      {.max_entries = 100'000},
      {.ttl = 30s,
       .batch_loader = [&db](std::span<const int64_t> ids) { return db.load(ids); },
       .clock = clock});

  ensure(products.get(1).value() == "product-1", "get(k) asks the batch loader for one key");

  // An order page needs five products: one query for the four not cached.
  std::vector<int64_t> order = {1, 2, 3, 13, 4};
  larder::GetManyResult<int64_t, std::string> page = products.get_many(order);
  ensure(db.queries == 2, "one batch for every missing key");
  ensure(page.ok() && page->size() == 4 && !page->contains(13),
         "a key the loader left out is absent");

  // The same page in the order's own order: one slot per id, no map built.
  larder::GetManyAlignedResult<std::string> rows = products.get_many_aligned(order);
  ensure(rows.ok() && rows.size() == 5 && rows[1] == "product-2" && !rows[3].has_value(),
         "slot i holds order[i]'s value; 13 is absent");
  ensure(db.queries == 3, "only 13 is queried again (absent, and not remembered)");

  // A failing batch costs only the keys it was loading.
  db.down = true;
  page = products.get_many({1, 2, 5, 6});
  ensure(!page.ok() && page->size() == 2, "cached keys keep their values");
  ensure(page.errors().size() == 2 && page.errors().contains(5), "each failed key has its error");
}
// snippet:batch_loading:end

// Without a batch loader, get_many loads key by key: the N+1 shape.
void one_by_one() {
  auto clock = std::make_shared<larder::ManualClock>();
  int queries = 0;
  auto products = larder::make_local_cache<int64_t, std::string>(
      {.max_entries = 100}, {.loader = [&](int64_t id) -> absl::StatusOr<std::string> {
                               ++queries;
                               return "product-" + std::to_string(id);
                             },
                             .clock = clock});
  auto page = products.get_many({1, 2, 3, 4});
  ensure(page.ok() && queries == 4, "four keys, four loader calls");
}

int main() {
  ProductDb db;
  batch_loading(db);
  one_by_one();
  std::puts("batch loading: ok");
  return 0;
}
