// SPDX-License-Identifier: Apache-2.0
//
// Cache's longer member definitions (cache.h has the interface and the
// design essay; internal/cache_core.h the logic they delegate to): the
// constructor and its option plumbing (resolve_clock: one clock for the cache
// and its store, a mismatch refused; bind_loaders: the bound loader as the
// per-call default), the move assignment and shut_down (the destructor's
// order: stop the write-back, apply deferred drops, close the core), get_many over the bound
// loader, merge on top of compute, and with_span (any range of keys as one
// contiguous span). Included at the end of cache.h; not a header to include
// on its own. The members that are not templates themselves are not
// `inline`: for the common <K, V> they are compiled once in larder::core
// (`extern template` at the end of this file), so a user's file does not
// instantiate the core behind the constructor (CacheCore and its parts, the
// write-back, the default executor) again. with_span and merge stay inline
// (member templates over the caller's types).
#ifndef LARDER_INTERNAL_CACHE_IMPL_H_
#define LARDER_INTERNAL_CACHE_IMPL_H_

#include <cstdint>
#include <string>

#include "larder/cache.h"

namespace larder {

template <class K, class V>
Cache<K, V>::Cache(std::shared_ptr<Store<K, V>> store, CacheOptions<K, V> options)
    : executor_(options.executor ? options.executor : default_executor()) {
  resolve_clock(store, options);
  bind_loaders(options);
  core_ = std::make_shared<internal::CacheCore<K, V>>(std::move(store), std::move(options),
                                                      executor_.get());
}

template <class K, class V>
Cache<K, V>& Cache<K, V>::operator=(Cache&& other) noexcept {
  if (this != &other) {
    shut_down();
    core_ = std::move(other.core_);
    executor_ = std::move(other.executor_);
  }
  return *this;
}

template <class K, class V>
void Cache<K, V>::shut_down() {
  if (!core_) return;
  core_->stop_write_back();
  core_->repair_now();
  core_->close();
  core_.reset();
}

template <class K, class V>
GetManyResult<K, V> Cache<K, V>::get_many_bound(std::span<const K> keys) {
  const CacheOptions<K, V>& o = core_->options();
  if (o.batch_loader) return core_->get_many(keys, o.batch_loader);
  Map values;
  typename GetManyResult<K, V>::Errors errors;
  absl::Status first;
  if (!o.loader) {
    first = no_loader("get_many(keys)", "batch_loader or loader");
    for (const K& k : keys) errors.emplace(k, first);
    return GetManyResult<K, V>(std::move(values), std::move(errors), std::move(first));
  }
  for (const K& k : keys) {
    if (values.contains(k) || errors.contains(k)) continue;
    absl::StatusOr<V> r = core_->get_or_load(k, o.loader);
    if (r.ok()) {
      values.emplace(k, *std::move(r));
    } else if (!absl::IsNotFound(r.status())) {
      keep_first(first, r.status());
      errors.emplace(k, r.status());
    }
  }
  return GetManyResult<K, V>(std::move(values), std::move(errors), std::move(first));
}

template <class K, class V>
void Cache<K, V>::resolve_clock(const std::shared_ptr<Store<K, V>>& store, CacheOptions<K, V>& o) {
  if (!store) throw std::invalid_argument("store must not be null");
  std::shared_ptr<Clock> store_clock = store->clock();
  if (o.clock == nullptr) {
    o.clock = store_clock != nullptr ? std::move(store_clock) : system_clock();
  } else if (store_clock != nullptr && !same_clock(*o.clock, *store_clock)) {
    throw std::invalid_argument(
        "clock: CacheOptions::clock is not the clock the store reads (Store::clock()); set the "
        "clock once: leave CacheOptions::clock null to use the store's, or give the store "
        "(LocalStoreOptions / RedisOptions / TieredStoreOptions ::clock) the same clock");
  }
}

template <class K, class V>
void Cache<K, V>::bind_loaders(CacheOptions<K, V>& o) {
  if (o.loader || !o.batch_loader) return;
  o.loader = [batch = o.batch_loader](const K& key) -> absl::StatusOr<V> {
    absl::StatusOr<Map> m = batch(std::span<const K>(&key, 1));
    if (!m.ok()) return m.status();
    auto it = m->find(key);
    if (it == m->end())
      return absl::NotFoundError("the batch loader returned no value for the key");
    return std::move(it->second);
  };
}
template <class K, class V>
GetManyAlignedResult<V> Cache<K, V>::get_many_aligned_bound(std::span<const K> keys) {
  const CacheOptions<K, V>& o = core_->options();
  if (o.batch_loader) return core_->get_many_aligned(keys, o.batch_loader);
  // One key at a time through the loader: get_many_bound's answers, in slots.
  GetManyResult<K, V> m = get_many_bound(keys);
  typename GetManyAlignedResult<V>::Values values(keys.size());
  std::vector<typename GetManyAlignedResult<V>::KeyError> errors;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (auto it = m->find(keys[i]); it != m->end()) {
      values[i] = it->second;
    } else if (auto e = m.errors().find(keys[i]); e != m.errors().end()) {
      errors.push_back({i, e->second});
    }
  }
  return GetManyAlignedResult<V>(std::move(values), std::move(errors), m.status());
}

template <class K, class V>
template <class Keys, class Fn>
inline std::invoke_result_t<Fn&, std::span<const K>> Cache<K, V>::with_span(const Keys& keys,
                                                                            Fn&& fn) {
  if constexpr (std::ranges::contiguous_range<const Keys&> &&
                std::is_same_v<std::ranges::range_value_t<const Keys&>, K>) {
    return fn(std::span<const K>(std::ranges::data(keys), std::ranges::size(keys)));
  } else {
    std::vector<K> v;
    if constexpr (std::ranges::sized_range<const Keys&>) v.reserve(std::ranges::size(keys));
    for (auto&& k : keys) v.emplace_back(k);
    return fn(std::span<const K>(v));
  }
}

template <class K, class V>
template <class Fn>
inline absl::StatusOr<V> Cache<K, V>::merge(const K& key, V delta, Fn&& fn) {
  auto update = [&](std::optional<V> cur) -> std::optional<V> {
    if (!cur) return delta;
    return static_cast<V>(fn(std::as_const(*cur), std::as_const(delta)));
  };
  absl::StatusOr<std::optional<V>> r = core_->compute(key, update);
  if (!r.ok()) return r.status();
  return **std::move(r);
}

// Cache<std::string, std::string> and Cache<std::int64_t, std::string> are
// compiled once in larder::core (src/core/instances_cache.cc), with the core
// behind them (cache_core.h); other <K, V> are instantiated where they are
// used, as usual. Define LARDER_NO_EXTERN_TEMPLATES to instantiate them in
// your own files too, e.g. when those are built with a sanitizer the library
// was not built with.
#ifndef LARDER_NO_EXTERN_TEMPLATES
extern template class Cache<std::string, std::string>;
extern template class Cache<std::int64_t, std::string>;
#endif  // LARDER_NO_EXTERN_TEMPLATES

}  // namespace larder

#endif  // LARDER_INTERNAL_CACHE_IMPL_H_
