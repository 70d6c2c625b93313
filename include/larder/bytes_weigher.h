// SPDX-License-Identifier: Apache-2.0
//
// bytes_weigher: a LocalStore weigher that counts real bytes, so that
// LocalStoreOptions::max_weight is a memory budget in bytes.
//
//   larder::LocalStore<std::string, std::vector<int>> store(
//       {.max_entries = 100'000 /* expected count: sizes the sketch */,
//        .max_weight = 64 << 20 /* 64 MiB */},
//       {.weigher = larder::bytes_weigher<std::string, std::vector<int>>()});
//
// An entry weighs
//
//   kLocalEntryOverheadBytes + sizeof(K) + sizeof(V) + heap_bytes(key) + heap_bytes(value)
//
//   kLocalEntryOverheadBytes (64): what LocalStore spends per entry beside the
//     key and value objects: the node's policy and timer links (32 bytes),
//     the entry's two deadlines (16), its share of the hash index (~5.3 at
//     75% load, counted as 8) and of the frequency sketch (~8.4 when
//     max_entries is the real expected count, counted as 8). Measured on
//     u64 -> u64 at 1M entries: 62.7 bytes (local_store.h, "Memory"). Not
//     counted: fixed per-shard costs (the adaptive policy's shadows, 0.15-0.9
//     MB a shard, whatever the bound), nodes retired but not yet reclaimed
//     (at most two epochs of removals).
//   heap_bytes(x): the heap blocks x owns, each rounded as glibc's malloc
//     rounds a request (an 8-byte header, 16-byte granules, 32 at least):
//       std::string                capacity + 1, or 0 when it is inline (SSO)
//       std::vector<T>             capacity * sizeof(T), plus each element's heap
//       std::deque, std::list, std::forward_list, std::map, std::set,
//       std::multimap, std::multiset  a node per element (two or three
//                                  pointers, a colour) plus each element's heap
//       std::unordered_map/set     a node per element (next pointer, cached
//                                  hash) plus the bucket array
//       std::pair, std::tuple, std::optional, std::array, std::variant:
//                                  their members' heap
//       std::unique_ptr<T>, std::shared_ptr<T>: the pointee (shared: its
//                                  control block too; shared owners each count it)
//       trivially copyable types   0
//     A type of your own: a member `std::size_t heap_bytes() const`, or a
//     free function `larder_heap_bytes(const T&)` found by argument-dependent
//     lookup (larder::heap_bytes(x) may help write either).
//     Any other type fails to compile (no silent zero).
//
// Checked against mallinfo2 (tests/bytes_weigher_test.cc, EvictionPolicy::
// kTinyLfu, 4 shards): the heap a LocalStore<std::string, std::string> of
// 20,000 entries adds, the empty store's own allocations taken away, is 0.98x
// its weight() for keys and values of mixed sizes and 0.94x for small ones;
// 40 MiB of puts into a 4 MiB store leave 4.19 MiB of heap (1.05x). With the
// default adaptive policy add its shadows (fixed per shard, up to 0.9 MB
// each): 1.08x and 1.22x at 20,000 entries, less at larger sizes. Values
// evicted or replaced live on until no reader can hold them (an epoch grace
// period); a weighted LocalStore reclaims them whenever 1/32 of a shard's
// budget is waiting, so they add at most ~10% to max_weight.
//
// Weights are capped at 2^30 - 1 per entry (LocalStore's limit); an entry
// heavier than a shard's share of max_weight is not stored.
#ifndef LARDER_BYTES_WEIGHER_H_
#define LARDER_BYTES_WEIGHER_H_

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <forward_list>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace larder {

// kLocalEntryOverheadBytes: LocalStore's bytes per entry beside the key and
// value objects (see above).
inline constexpr std::size_t kLocalEntryOverheadBytes = 64;

namespace internal {

// malloc_block: the bytes glibc's malloc takes for a request of n (0 for 0).
constexpr std::size_t malloc_block(std::size_t n) {
  if (n == 0) return 0;
  return std::max<std::size_t>(32, (n + 8 + 15) & ~std::size_t{15});
}

template <class T>
std::size_t heap_bytes_of(const T& x);

template <class T, class = void>
struct HasMemberHeapBytes : std::false_type {};
template <class T>
struct HasMemberHeapBytes<T, std::void_t<decltype(std::declval<const T&>().heap_bytes())>>
    : std::true_type {};

template <class T, class = void>
struct HasAdlHeapBytes : std::false_type {};
template <class T>
struct HasAdlHeapBytes<T, std::void_t<decltype(larder_heap_bytes(std::declval<const T&>()))>>
    : std::true_type {};

template <class C>
std::size_t elements_heap(const C& c) {
  std::size_t n = 0;
  for (const auto& e : c) n += heap_bytes_of(e);
  return n;
}

template <class T>
struct HeapBytes {
  static std::size_t of(const T& x) {
    if constexpr (HasMemberHeapBytes<T>::value) {
      return x.heap_bytes();
    } else if constexpr (HasAdlHeapBytes<T>::value) {
      return larder_heap_bytes(x);
    } else {
      static_assert(std::is_trivially_copyable_v<T>,
                    "bytes_weigher: give this type a heap_bytes() member or an ADL "
                    "larder_heap_bytes(const T&) function");
      (void)x;
      return 0;
    }
  }
};

template <class Ch, class Tr, class A>
struct HeapBytes<std::basic_string<Ch, Tr, A>> {
  static std::size_t of(const std::basic_string<Ch, Tr, A>& s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* self = reinterpret_cast<const unsigned char*>(&s);
    if (p >= self && p < self + sizeof(s)) return 0;  // inline (small string)
    return malloc_block((s.capacity() + 1) * sizeof(Ch));
  }
};

template <class T, class A>
struct HeapBytes<std::vector<T, A>> {
  static std::size_t of(const std::vector<T, A>& v) {
    return malloc_block(v.capacity() * sizeof(T)) + elements_heap(v);
  }
};

template <class T, class A>
struct HeapBytes<std::deque<T, A>> {
  static std::size_t of(const std::deque<T, A>& d) {
    // libstdc++: 512-byte blocks (or one element when larger) and a map of
    // block pointers (8 at least).
    const std::size_t per_block = sizeof(T) < 512 ? 512 / sizeof(T) : 1;
    const std::size_t blocks = d.size() / per_block + 1;
    return blocks * malloc_block(per_block * sizeof(T)) +
           malloc_block(std::max<std::size_t>(8, blocks + 2) * sizeof(void*)) + elements_heap(d);
  }
};

template <class C, std::size_t kNodeLinks>
std::size_t node_container(const C& c) {
  using V = typename C::value_type;
  return c.size() * malloc_block(kNodeLinks + sizeof(V)) + elements_heap(c);
}

template <class T, class A>
struct HeapBytes<std::list<T, A>> {
  static std::size_t of(const std::list<T, A>& c) { return node_container<std::list<T, A>, 16>(c); }
};
template <class T, class A>
struct HeapBytes<std::forward_list<T, A>> {
  static std::size_t of(const std::forward_list<T, A>& c) {
    std::size_t n = 0;
    for (const auto& e : c) n += malloc_block(8 + sizeof(T)) + heap_bytes_of(e);
    return n;
  }
};
template <class K, class V, class Cmp, class A>
struct HeapBytes<std::map<K, V, Cmp, A>> {
  static std::size_t of(const std::map<K, V, Cmp, A>& c) {
    return node_container<std::map<K, V, Cmp, A>, 32>(c);
  }
};
template <class K, class V, class Cmp, class A>
struct HeapBytes<std::multimap<K, V, Cmp, A>> {
  static std::size_t of(const std::multimap<K, V, Cmp, A>& c) {
    return node_container<std::multimap<K, V, Cmp, A>, 32>(c);
  }
};
template <class K, class Cmp, class A>
struct HeapBytes<std::set<K, Cmp, A>> {
  static std::size_t of(const std::set<K, Cmp, A>& c) {
    return node_container<std::set<K, Cmp, A>, 32>(c);
  }
};
template <class K, class Cmp, class A>
struct HeapBytes<std::multiset<K, Cmp, A>> {
  static std::size_t of(const std::multiset<K, Cmp, A>& c) {
    return node_container<std::multiset<K, Cmp, A>, 32>(c);
  }
};

template <class C>
std::size_t hashed_container(const C& c) {
  using V = typename C::value_type;
  // next pointer and cached hash per node; one bucket array (none while the
  // container uses its single inline bucket).
  const std::size_t buckets =
      c.bucket_count() > 1 ? malloc_block(c.bucket_count() * sizeof(void*)) : 0;
  return c.size() * malloc_block(16 + sizeof(V)) + buckets + elements_heap(c);
}
template <class K, class V, class H, class E, class A>
struct HeapBytes<std::unordered_map<K, V, H, E, A>> {
  static std::size_t of(const std::unordered_map<K, V, H, E, A>& c) { return hashed_container(c); }
};
template <class K, class H, class E, class A>
struct HeapBytes<std::unordered_set<K, H, E, A>> {
  static std::size_t of(const std::unordered_set<K, H, E, A>& c) { return hashed_container(c); }
};

template <class A, class B>
struct HeapBytes<std::pair<A, B>> {
  static std::size_t of(const std::pair<A, B>& p) {
    return heap_bytes_of(p.first) + heap_bytes_of(p.second);
  }
};
template <class... Ts>
struct HeapBytes<std::tuple<Ts...>> {
  static std::size_t of(const std::tuple<Ts...>& t) {
    return std::apply([](const auto&... e) { return (std::size_t{0} + ... + heap_bytes_of(e)); },
                      t);
  }
};
template <class T>
struct HeapBytes<std::optional<T>> {
  static std::size_t of(const std::optional<T>& o) { return o ? heap_bytes_of(*o) : 0; }
};
template <class T, std::size_t N>
struct HeapBytes<std::array<T, N>> {
  static std::size_t of(const std::array<T, N>& a) { return elements_heap(a); }
};
template <class... Ts>
struct HeapBytes<std::variant<Ts...>> {
  static std::size_t of(const std::variant<Ts...>& v) {
    return std::visit([](const auto& e) { return heap_bytes_of(e); }, v);
  }
};
template <class T, class D>
struct HeapBytes<std::unique_ptr<T, D>> {
  static std::size_t of(const std::unique_ptr<T, D>& p) {
    return p ? malloc_block(sizeof(T)) + heap_bytes_of(*p) : 0;
  }
};
template <class T>
struct HeapBytes<std::shared_ptr<T>> {
  static std::size_t of(const std::shared_ptr<T>& p) {
    // make_shared: one block, the object after a 16-byte control block.
    return p ? malloc_block(16 + sizeof(T)) + heap_bytes_of(*p) : 0;
  }
};

template <class T>
std::size_t heap_bytes_of(const T& x) {
  return HeapBytes<std::remove_cv_t<T>>::of(x);
}

}  // namespace internal

// heap_bytes: the heap blocks x owns (see above), as malloc accounts them.
template <class T>
std::size_t heap_bytes(const T& x) {
  return internal::heap_bytes_of(x);
}

// bytes_weigher: a weigher for LocalStore<K, V> whose weights are bytes.
template <class K, class V>
std::function<std::size_t(const K&, const V&)> bytes_weigher() {
  return [](const K& key, const V& value) -> std::size_t {
    return kLocalEntryOverheadBytes + sizeof(K) + sizeof(V) + internal::heap_bytes_of(key) +
           internal::heap_bytes_of(value);
  };
}

}  // namespace larder

#endif  // LARDER_BYTES_WEIGHER_H_
