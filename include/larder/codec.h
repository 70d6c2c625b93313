// SPDX-License-Identifier: Apache-2.0
//
// Codec<T>: bytes <-> value, for stores whose entries leave the process (Redis).
//
// A codec is a stateless struct with two static functions:
//
//   static void encode(const T& value, std::string& out);   // APPENDS to out
//   static absl::StatusOr<T> decode(std::string_view bytes); // all of bytes
//
// decode must consume exactly `bytes`; bytes of the wrong length or shape are
// an error Status (kDataLoss), never an exception or undefined behaviour: the
// bytes may have been written by another version of the program, or by
// somebody else entirely.
//
// Built in:
//   * std::string                  the bytes themselves
//   * bool, integers, floating     fixed width, little-endian on every host, so
//                                  two machines of any byte order agree
//   * enums with a fixed           as their underlying integer. An enum
//     underlying type              WITHOUT one (`enum E { kA, kB };`) has no
//     (`enum class E`, `enum E : int`) built-in codec: only the values of its
//                                  enumerators' bit range are valid, and
//                                  converting any other decoded integer is
//                                  undefined behaviour; give it a fixed type.
//   * opted-in trivially copyable  the object's bytes, for structs whose type
//     structs                      says so: `template <> inline constexpr bool
//                                  larder::kBytewiseCodec<my::Pod> = true;`.
//                                  By opting in you assert that EVERY byte
//                                  pattern of sizeof(T) bytes is a valid T
//                                  (integers, floats and arrays of them only:
//                                  no bool, no enum, no pointer members) and
//                                  accept that padding bytes travel too.
//                                  Little-endian hosts only. Other structs
//                                  have no built-in codec: decoding a `bool`
//                                  member from a foreign or corrupted byte 2
//                                  would be undefined behaviour, and nothing
//                                  in C++20 can look inside a struct to check,
//                                  so write a Codec (below) that validates.
//   * std::vector<T>, T arithmetic each element as above
//   * std::shared_ptr<const T>     forwards to Codec<T> (a leading presence byte
//                                  marks null), so large values can be cached as
//                                  shared pointers and still go to Redis.
//
// A user's type: specialise larder::Codec, e.g. for a protobuf message
//
//   template <> struct larder::Codec<my::User> {
//     static void encode(const my::User& u, std::string& out) { out += u.SerializeAsString(); }
//     static absl::StatusOr<my::User> decode(std::string_view b) {
//       my::User u;
//       if (!u.ParseFromArray(b.data(), static_cast<int>(b.size())))
//         return absl::DataLossError("not a my.User");
//       return u;
//     }
//   };
//
// Thread-safety: codecs are stateless; call them from any thread.
#ifndef LARDER_CODEC_H_
#define LARDER_CODEC_H_

#include <bit>
#include <charconv>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "larder/internal/absl_compat.h"

namespace larder {

// Codec: primary template, deliberately undefined. Specialise it for your type.
template <class T, class Enable = void>
struct Codec;

// CodecFor: the shape a codec for T must have.
template <class C, class T>
concept CodecFor = requires(const T& v, std::string& out, std::string_view in) {
  {C::encode(v, out)};
  { C::decode(in) } -> std::same_as<absl::StatusOr<T>>;
};

namespace internal {

// Unsigned integer of the same size as T, for byte-order work.
template <std::size_t N>
struct UintOfSize;
template <>
struct UintOfSize<1> {
  using type = std::uint8_t;
};
template <>
struct UintOfSize<2> {
  using type = std::uint16_t;
};
template <>
struct UintOfSize<4> {
  using type = std::uint32_t;
};
template <>
struct UintOfSize<8> {
  using type = std::uint64_t;
};

// Appends the little-endian bytes of an arithmetic value.
template <class T>
void append_le(const T& v, std::string& out) {
  using U = typename UintOfSize<sizeof(T)>::type;
  U bits;
  std::memcpy(&bits, &v, sizeof(T));
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    out.push_back(static_cast<char>(static_cast<std::uint8_t>(bits >> (8 * i))));
  }
}

// Reads an arithmetic value from exactly sizeof(T) little-endian bytes at p.
template <class T>
T read_le(const char* p) {
  using U = typename UintOfSize<sizeof(T)>::type;
  U bits = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    bits |= static_cast<U>(static_cast<U>(static_cast<std::uint8_t>(p[i])) << (8 * i));
  }
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

inline absl::Status size_mismatch(std::string_view what, std::size_t want, std::size_t got) {
  return absl::DataLossError(
      absl::StrCat("codec: ", av(what), " needs ", want, " bytes, got ", got));
}

template <class T>
inline constexpr bool kIsPlainStruct =
    std::is_trivially_copyable_v<T> && !std::is_arithmetic_v<T> && !std::is_enum_v<T> &&
    !std::is_pointer_v<T> && !std::is_member_pointer_v<T>;

// An enum has a fixed underlying type exactly when it can be list-initialised
// from that type (C++17 [dcl.init.list]); only then is every value of the
// underlying type a valid value of the enum.
template <class T>
concept FixedUnderlyingEnum = std::is_enum_v<T> && requires(std::underlying_type_t<T> u) {
  T{u};
};

}  // namespace internal

// kBytewiseCodec<T>: specialise to true for a trivially copyable struct whose
// every byte pattern is a valid value (see the header comment) to give it the
// built-in raw-bytes codec. False by default: a struct needs an explicit
// Codec, because a bool or enum member decoded from bytes it never held is
// undefined behaviour.
template <class T>
inline constexpr bool kBytewiseCodec = false;

// std::string: the bytes themselves.
template <>
struct Codec<std::string> {
  static void encode(const std::string& v, std::string& out) { out.append(v); }
  static absl::StatusOr<std::string> decode(std::string_view bytes) { return std::string(bytes); }
};

// bool: one byte, 0 or 1; anything else is DataLoss.
template <>
struct Codec<bool> {
  static void encode(bool v, std::string& out) { out.push_back(v ? '\1' : '\0'); }
  static absl::StatusOr<bool> decode(std::string_view bytes) {
    if (bytes.size() != 1) return internal::size_mismatch("bool", 1, bytes.size());
    if (bytes[0] != '\0' && bytes[0] != '\1') {
      return absl::DataLossError("codec: bool byte is neither 0 nor 1");
    }
    return bytes[0] == '\1';
  }
};

// Integers and floating point: fixed width, little-endian.
template <class T>
struct Codec<T, std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>>> {
  static void encode(const T& v, std::string& out) { internal::append_le(v, out); }
  static absl::StatusOr<T> decode(std::string_view bytes) {
    if (bytes.size() != sizeof(T)) {
      return internal::size_mismatch("arithmetic value", sizeof(T), bytes.size());
    }
    return internal::read_le<T>(bytes.data());
  }
};

// Enums with a fixed underlying type: as that integer (every value of it is a
// valid value of the enum, so decoding never makes an invalid enum).
template <class T>
struct Codec<T, std::enable_if_t<internal::FixedUnderlyingEnum<T>>> {
  using U = std::underlying_type_t<T>;
  static void encode(const T& v, std::string& out) { Codec<U>::encode(static_cast<U>(v), out); }
  static absl::StatusOr<T> decode(std::string_view bytes) {
    absl::StatusOr<U> u = Codec<U>::decode(bytes);
    if (!u.ok()) return u.status();
    return static_cast<T>(*u);
  }
};

// Opted-in trivially copyable structs: the object's bytes (little-endian hosts
// only).
template <class T>
struct Codec<T, std::enable_if_t<internal::kIsPlainStruct<T> && kBytewiseCodec<T>>> {
  static_assert(std::endian::native == std::endian::little,
                "larder::Codec for trivially copyable structs copies raw bytes, "
                "which is portable only between little-endian hosts; specialise "
                "larder::Codec for this type");
  static void encode(const T& v, std::string& out) {
    out.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  static absl::StatusOr<T> decode(std::string_view bytes) {
    if (bytes.size() != sizeof(T)) {
      return internal::size_mismatch("trivially copyable struct", sizeof(T), bytes.size());
    }
    T v;
    std::memcpy(static_cast<void*>(&v), bytes.data(), sizeof(T));
    return v;
  }
};

// std::vector of arithmetic values: each element fixed width, little-endian.
template <class T>
struct Codec<std::vector<T>,
             std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>>> {
  static void encode(const std::vector<T>& v, std::string& out) {
    out.reserve(out.size() + v.size() * sizeof(T));
    for (const T& x : v) internal::append_le(x, out);
  }
  static absl::StatusOr<std::vector<T>> decode(std::string_view bytes) {
    if (bytes.size() % sizeof(T) != 0) {
      return absl::DataLossError(absl::StrCat("codec: vector of ", sizeof(T),
                                              "-byte elements cannot be ", bytes.size(),
                                              " bytes long"));
    }
    std::vector<T> v(bytes.size() / sizeof(T));
    for (std::size_t i = 0; i < v.size(); ++i) {
      v[i] = internal::read_le<T>(bytes.data() + i * sizeof(T));
    }
    return v;
  }
};

// std::shared_ptr<const T>: a presence byte (0 null, 1 value) then Codec<T>.
template <class T>
struct Codec<std::shared_ptr<const T>> {
  static void encode(const std::shared_ptr<const T>& v, std::string& out) {
    if (!v) {
      out.push_back('\0');
      return;
    }
    out.push_back('\1');
    Codec<T>::encode(*v, out);
  }
  static absl::StatusOr<std::shared_ptr<const T>> decode(std::string_view bytes) {
    if (bytes.empty()) {
      return absl::DataLossError("codec: shared_ptr value has no presence byte");
    }
    if (bytes[0] == '\0') {
      if (bytes.size() != 1) {
        return absl::DataLossError("codec: null shared_ptr followed by bytes");
      }
      return std::shared_ptr<const T>();
    }
    if (bytes[0] != '\1') {
      return absl::DataLossError("codec: shared_ptr presence byte is neither 0 nor 1");
    }
    absl::StatusOr<T> inner = Codec<T>::decode(bytes.substr(1));
    if (!inner.ok()) return inner.status();
    return std::shared_ptr<const T>(std::make_shared<const T>(*std::move(inner)));
  }
};

// DefaultKeyCodec<K>: how keys leave the process by default (RedisStore,
// TieredStore's invalidation bus, RedisLoadGuard): integers (and enums with
// a fixed underlying type) as DECIMAL TEXT, so Redis holds "users:v1:42"
// (not 8 raw bytes) and redis-cli, a database trigger's PUBLISH or another
// language can name a key; every other type through Codec<K> (std::string:
// the bytes themselves). A key type with no Codec is a compile error naming
// the fix (a struct never gets raw bytes silently: specialise Codec<K> or
// pass a KeyCodec). Decimal decoding accepts exactly what encode writes
// ("-12", not "+12", " 12" or "012"); anything else is kDataLoss.
template <class K, class Enable = void>
struct DefaultKeyCodec {
  static_assert(CodecFor<Codec<K>, K>,
                "larder: this key type has no codec. Keys that leave the process (RedisStore, "
                "TieredStore with an InvalidationBus, RedisLoadGuard) need one: specialise "
                "larder::Codec<K> for it (encode/decode, see codec.h), or pass a KeyCodec "
                "template argument. Structs get no raw-bytes codec by default.");
  static void encode(const K& k, std::string& out) { Codec<K>::encode(k, out); }
  static absl::StatusOr<K> decode(std::string_view bytes) { return Codec<K>::decode(bytes); }
};

template <class K>
struct DefaultKeyCodec<K, std::enable_if_t<std::is_integral_v<K> && !std::is_same_v<K, bool>>> {
  static void encode(const K& k, std::string& out) {
    char buf[24];
    const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), k);
    out.append(buf, r.ptr);
  }
  static absl::StatusOr<K> decode(std::string_view bytes) {
    K k{};
    const char* end = bytes.data() + bytes.size();
    const std::from_chars_result r = std::from_chars(bytes.data(), end, k);
    if (bytes.empty() || r.ec != std::errc() || r.ptr != end) {
      return absl::DataLossError("codec: key is not a decimal integer of its type");
    }
    // Only the canonical form: what encode would have written.
    std::string again;
    encode(k, again);
    if (again != bytes) return absl::DataLossError("codec: key is not in canonical decimal form");
    return k;
  }
};

template <class K>
struct DefaultKeyCodec<K, std::enable_if_t<internal::FixedUnderlyingEnum<K>>> {
  using U = std::underlying_type_t<K>;
  static void encode(const K& k, std::string& out) {
    DefaultKeyCodec<U>::encode(static_cast<U>(k), out);
  }
  static absl::StatusOr<K> decode(std::string_view bytes) {
    absl::StatusOr<U> u = DefaultKeyCodec<U>::decode(bytes);
    if (!u.ok()) return u.status();
    return static_cast<K>(*u);
  }
};

namespace internal {
// HasKeyCodec<K, KeyCodec>: whether KeyCodec can encode K, asked without
// instantiating DefaultKeyCodec's static_assert (TieredStore checks it at run
// time: only a bus needs the key as bytes).
template <class K, class KC>
consteval bool has_key_codec() {
  if constexpr (std::is_same_v<KC, DefaultKeyCodec<K>>) {
    return (std::is_integral_v<K> && !std::is_same_v<K, bool>) || FixedUnderlyingEnum<K> ||
           CodecFor<Codec<K>, K>;
  } else {
    return CodecFor<KC, K>;
  }
}
}  // namespace internal

// encode_to_string / decode_from: conveniences over Codec<T>.
template <class T, class C = Codec<T>>
std::string encode_to_string(const T& v) {
  std::string out;
  C::encode(v, out);
  return out;
}
template <class T, class C = Codec<T>>
absl::StatusOr<T> decode_from(std::string_view bytes) {
  return C::decode(bytes);
}

}  // namespace larder

#endif  // LARDER_CODEC_H_
