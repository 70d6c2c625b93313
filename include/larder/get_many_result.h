// SPDX-License-Identifier: Apache-2.0
//
// GetManyResult<K, V>: what Cache::get_many returns (cache.h). Included by
// cache.h.
#ifndef LARDER_GET_MANY_RESULT_H_
#define LARDER_GET_MANY_RESULT_H_

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace larder {

// GetManyResult: what get_many returns: the values of every key that has one,
// and the error of each key that failed (NotFound is not an error: such a key
// is simply absent). A failing key does not cost the others their values.
// Shaped like absl::StatusOr<Map> (ok(), status(), *, ->, value()) so that
// `if (!r.ok()) return r.status();` reads as usual, but *r is the values
// found even when !ok().
template <class K, class V>
class GetManyResult {
 public:
  using Map = absl::flat_hash_map<K, V>;
  using Errors = absl::flat_hash_map<K, absl::Status>;

  GetManyResult() = default;
  GetManyResult(Map values, Errors errors, absl::Status first_error)
      : values_(std::move(values)), errors_(std::move(errors)), first_(std::move(first_error)) {}

  // ok: no key failed.
  bool ok() const { return first_.ok(); }
  // status: OK, or the first error met (errors() has each key's).
  const absl::Status& status() const { return first_; }
  // values: every key that has a value (with a stale fallback, the stale value).
  Map& value() & { return values_; }
  const Map& value() const& { return values_; }
  Map&& value() && { return std::move(values_); }
  Map& operator*() & { return values_; }
  const Map& operator*() const& { return values_; }
  Map&& operator*() && { return std::move(values_); }
  Map* operator->() { return &values_; }
  const Map* operator->() const { return &values_; }
  // errors: the keys that failed, each with its error.
  const Errors& errors() const { return errors_; }

  // As an absl::StatusOr<Map>: the values when no key failed, else the first
  // error (the values are dropped).
  operator absl::StatusOr<Map>() && {
    if (!first_.ok()) return first_;
    return std::move(values_);
  }

 private:
  Map values_;
  Errors errors_;
  absl::Status first_;
};

}  // namespace larder

#endif  // LARDER_GET_MANY_RESULT_H_
