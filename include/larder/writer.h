// SPDX-License-Identifier: Apache-2.0
//
// WriteMode and Writer<K, V>: how Cache<K, V> reaches the system of record for
// writes (cache.h, put and erase).
//
//   kNone          cache-aside: the service writes the system of record itself,
//                  then calls Cache::invalidate(k). Cache::put only caches.
//   kWriteThrough  Cache::put calls Writer::write first and caches only after
//                  it succeeded; the call returns when both hold.
//   kWriteBack     Cache::put caches, marks the key dirty and returns; a flusher
//                  writes dirty keys in batches through Writer::write.
//
// The Writer's functions are user code: larder never calls them under one of
// its locks, and may call them from a background thread (write-back).
#ifndef LARDER_WRITER_H_
#define LARDER_WRITER_H_

#include <functional>
#include <span>
#include <utility>

#include "absl/status/status.h"

namespace larder {

enum class WriteMode { kNone, kWriteThrough, kWriteBack };

template <class K, class V>
struct Writer {
  // write: upserts a batch into the system of record. All-or-nothing from
  // larder's point of view: a non-OK Status means the whole batch is retried.
  std::function<absl::Status(std::span<const std::pair<K, V>>)> write = nullptr;
  // erase: deletes a batch of keys from the system of record. May be empty, in
  // which case Cache::erase only drops the key from the cache.
  std::function<absl::Status(std::span<const K>)> erase = nullptr;
};

}  // namespace larder

#endif  // LARDER_WRITER_H_
