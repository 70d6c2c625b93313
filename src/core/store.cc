// SPDX-License-Identifier: Apache-2.0
//
// report_store_counters (store.h): no template parameter, compiled once.
#include "larder/store.h"

namespace larder::internal {

void report_store_counters(const StoreCounters& c, std::span<const MetricLabel> labels,
                           MetricCallback out) {
  emit_counter(out, "larder_store_hits_total", "Store gets answered with an entry", labels, c.hits);
  emit_counter(out, "larder_store_misses_total", "Store gets answered with no entry", labels,
               c.misses);
  emit_counter(out, "larder_store_evictions_total",
               "Entries the store dropped to respect its bound", labels, c.evictions);
  emit_counter(out, "larder_store_expirations_total", "Entries the store dropped at stale_until",
               labels, c.expirations);
  emit_counter(out, "larder_store_errors_total",
               "Store operations that failed, and values that did not decode", labels, c.errors);
  emit_gauge(out, "larder_store_entries", "Entries the store holds now", labels,
             static_cast<double>(c.size));
  emit_gauge(out, "larder_store_weight", "Total weight the store holds now (0 without a weigher)",
             labels, static_cast<double>(c.weight));
}

}  // namespace larder::internal
