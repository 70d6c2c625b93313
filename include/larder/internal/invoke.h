// SPDX-License-Identifier: Apache-2.0
//
// invoke.h: the one policy for calling user code (loaders, batch loaders,
// Writer functions and callbacks).
//
// User code may throw; larder never lets an exception cross one of its calls
// or a background thread. Two shapes:
//   * call_user(what, fn): fn returns absl::Status (or something convertible);
//     a throw becomes kInternal "<what> threw: <what()>". Used for Writer
//     calls and, through invoke_loader / invoke_batch_loader, for loaders,
//     which may return V or absl::StatusOr<V>.
//   * notify_user(fn, args...): a callback whose result is ignored
//     (on_refresh_error, write_back.on_error, on_bus_error). A null callback is a
//     no-op; a throw is swallowed, because the failure it reports is already
//     counted in stats and the caller (an executor, flusher or bus thread, or
//     a put() that only wanted to report) must go on.
// Every call site in larder goes through these; there is no other
// try/catch around user code (the executor's task guard aside).
//
// Thread-safety: stateless.
#ifndef LARDER_INTERNAL_INVOKE_H_
#define LARDER_INTERNAL_INVOKE_H_

#include <exception>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "larder/internal/absl_compat.h"

namespace larder::internal {

// exception_status: kInternal naming `what` and the exception's what().
inline absl::Status exception_status(std::string_view what, const std::exception_ptr& ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(av(what), " threw: ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(av(what), " threw a non-std::exception"));
  }
}

// call_user: fn() as R (a Status or StatusOr), a throw as kInternal.
template <class R = absl::Status, class Fn>
R call_user(std::string_view what, Fn&& fn) {
  try {
    return R(std::forward<Fn>(fn)());
  } catch (...) {
    return R(exception_status(what, std::current_exception()));
  }
}

// notify_user: calls a callback (std::function or null) and swallows what it
// throws.
template <class Callback, class... Args>
void notify_user(const Callback& callback, Args&&... args) noexcept {
  if (!callback) return;
  try {
    callback(std::forward<Args>(args)...);
  } catch (...) {
    // Reported failures are counted by the caller; a callback must not take
    // down the thread that reports them.
  }
}

// invoke_loader: calls loader(key) and turns V / StatusOr<V> / a throw into
// StatusOr<V>.
template <class V, class K, class Loader>
absl::StatusOr<V> invoke_loader(Loader& loader, const K& key) {
  using R = std::invoke_result_t<Loader&, const K&>;
  if constexpr (std::is_same_v<std::decay_t<R>, absl::StatusOr<V>>) {
    return call_user<absl::StatusOr<V>>("loader", [&] { return loader(key); });
  } else {
    static_assert(std::is_convertible_v<R, V>, "a Loader must return V or absl::StatusOr<V>");
    return call_user<absl::StatusOr<V>>("loader", [&] { return V(loader(key)); });
  }
}

// invoke_batch_loader: the same for a BatchLoader over a span of keys.
template <class K, class V, class BatchLoader>
absl::StatusOr<absl::flat_hash_map<K, V>> invoke_batch_loader(BatchLoader& load,
                                                              std::span<const K> keys) {
  using Map = absl::flat_hash_map<K, V>;
  using R = std::invoke_result_t<BatchLoader&, std::span<const K>>;
  if constexpr (std::is_same_v<std::decay_t<R>, absl::StatusOr<Map>>) {
    return call_user<absl::StatusOr<Map>>("batch loader", [&] { return load(keys); });
  } else {
    static_assert(std::is_convertible_v<R, Map>,
                  "a BatchLoader must return absl::flat_hash_map<K, V> or "
                  "absl::StatusOr<absl::flat_hash_map<K, V>>");
    return call_user<absl::StatusOr<Map>>("batch loader", [&] { return Map(load(keys)); });
  }
}

}  // namespace larder::internal

#endif  // LARDER_INTERNAL_INVOKE_H_
