// SPDX-License-Identifier: Apache-2.0
//
// GetManyResult<K, V>: what Cache::get_many returns (cache.h), and
// GetManyAlignedResult<V>: what Cache::get_many_aligned returns. Included by
// cache.h.
#ifndef LARDER_GET_MANY_RESULT_H_
#define LARDER_GET_MANY_RESULT_H_

#include <cstddef>
#include <optional>
#include <utility>
#include <vector>

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

// GetManyAlignedResult: what get_many_aligned returns: one slot per key
// passed, in the same order (a repeated key gets its value in each of its
// slots), holding the key's value or nullopt (absent: not found, or failed),
// and the error of each slot whose key failed. No key is copied to build
// it: the values are moved from the store's answers into their slots. ok()
// and status() as for GetManyResult.
template <class V>
class GetManyAlignedResult {
 public:
  using Values = std::vector<std::optional<V>>;
  // KeyError: the slot (the key's index in the keys passed) and its error.
  struct KeyError {
    std::size_t index;
    absl::Status status;
  };

  GetManyAlignedResult() = default;
  GetManyAlignedResult(Values values, std::vector<KeyError> errors, absl::Status first_error)
      : values_(std::move(values)), errors_(std::move(errors)), first_(std::move(first_error)) {}

  // ok: no key failed.
  bool ok() const { return first_.ok(); }
  // status: OK, or the first error met (errors() has each slot's).
  const absl::Status& status() const { return first_; }
  // size: how many keys were passed (and slots returned).
  std::size_t size() const { return values_.size(); }
  // operator[]: the value of the i-th key passed, or nullopt.
  std::optional<V>& operator[](std::size_t i) { return values_[i]; }
  const std::optional<V>& operator[](std::size_t i) const { return values_[i]; }
  // values: every slot, in the order of the keys passed.
  Values& values() & { return values_; }
  const Values& values() const& { return values_; }
  Values&& values() && { return std::move(values_); }
  // errors: the slots whose key failed, in increasing index order.
  const std::vector<KeyError>& errors() const { return errors_; }

 private:
  Values values_;
  std::vector<KeyError> errors_;
  absl::Status first_;
};

}  // namespace larder

#endif  // LARDER_GET_MANY_RESULT_H_
