// Codec<T>: how a C++ value is stored as a key-value storage value.
//
// Every stored value starts with one tag byte naming its type, followed by the
// payload. Built in: integers (tag 'i', stored as int64), double ('d'),
// std::string ('s'), Bytes ('b'), Json ('j', compact JSON text). Reading a value
// as another type than it was written throws dobj::Error (kInvalidArgument),
// except that Json reads any of integer, double, string and JSON.
//
// User types: specialize Codec for your type with static members
//   static void encode(const T& v, std::string& payload);
//   static T decode(std::string_view payload);   // throw dobj::Error on junk
// They are stored under tag 'u'.
//
// This header declares Json without defining it (nlohmann/json_fwd.hpp), so
// that storage code that uses no JSON does not compile the JSON library;
// code that reads or writes Json values includes <nlohmann/json.hpp> (as
// dobj/object.h does, for typed calls).
#pragma once

#include <cstdint>
#include <cstring>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "dobj/status.h"

namespace dobj {

using Json = nlohmann::json;
using Bytes = std::vector<uint8_t>;

template <typename T, typename Enable = void>
struct Codec;  // specialize for user types

// The deepest nesting of arrays and objects parse_json accepts. Deeper text is
// refused before parsing: a JSON value is written back out recursively, and
// without a bound one request could exhaust a shard's stack.
inline constexpr int kMaxJsonDepth = 256;

// Parses JSON text that came from outside (a request body, a stored value):
// kInvalidArgument with a message saying what is wrong when the text is not
// JSON or is nested deeper than kMaxJsonDepth. Every JSON entry point of dobj
// parses through here; object code should too.
Result<Json> parse_json(std::string_view text);

namespace internal {
[[noreturn]] void throw_type_mismatch(char stored_tag, const char* wanted);
const char* tag_name(char tag);
}  // namespace internal

namespace internal {
[[noreturn]] void throw_integer_out_of_range(std::string_view what, std::string_view value,
                                             size_t bytes, bool is_signed);
}  // namespace internal

// Integers are stored as int64. Writing a value that int64 cannot hold (a
// uint64_t past 2^63-1) and reading a stored value into a type that cannot
// hold it (5,000,000,000 as int32_t, -1 as uint32_t) throw
// dobj::Error(kInvalidArgument) instead of wrapping around.
template <typename T>
struct Codec<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>> {
  static constexpr char kTag = 'i';
  static void encode(T v, std::string& out) {
    if (!std::in_range<int64_t>(v)) {
      internal::throw_integer_out_of_range("cannot store", std::to_string(v), 8, true);
    }
    int64_t x = static_cast<int64_t>(v);
    char buf[8];
    std::memcpy(buf, &x, 8);
    out.append(buf, 8);
  }
  static T decode(std::string_view p) {
    if (p.size() != 8) throw Error(Code::kInvalidArgument, "corrupt integer value");
    int64_t x;
    std::memcpy(&x, p.data(), 8);
    if (!std::in_range<T>(x)) {
      internal::throw_integer_out_of_range("cannot read", std::to_string(x), sizeof(T),
                                           std::is_signed_v<T>);
    }
    return static_cast<T>(x);
  }
};

template <>
struct Codec<bool> {
  static constexpr char kTag = 'i';
  static void encode(bool v, std::string& out) { Codec<int64_t>::encode(v ? 1 : 0, out); }
  static bool decode(std::string_view p) { return Codec<int64_t>::decode(p) != 0; }
};

template <>
struct Codec<double> {
  static constexpr char kTag = 'd';
  static void encode(double v, std::string& out) {
    char buf[8];
    std::memcpy(buf, &v, 8);
    out.append(buf, 8);
  }
  static double decode(std::string_view p) {
    if (p.size() != 8) throw Error(Code::kInvalidArgument, "corrupt double value");
    double v;
    std::memcpy(&v, p.data(), 8);
    return v;
  }
};

template <>
struct Codec<std::string> {
  static constexpr char kTag = 's';
  static void encode(const std::string& v, std::string& out) { out.append(v); }
  static std::string decode(std::string_view p) { return std::string(p); }
};

template <>
struct Codec<Bytes> {
  static constexpr char kTag = 'b';
  static void encode(const Bytes& v, std::string& out) {
    out.append(reinterpret_cast<const char*>(v.data()), v.size());
  }
  static Bytes decode(std::string_view p) { return Bytes(p.begin(), p.end()); }
};

template <>
struct Codec<Json> {
  static constexpr char kTag = 'j';
  static void encode(const Json& v, std::string& out);  // compact text
  static Json decode(std::string_view p);
};

namespace internal {

template <typename T>
constexpr char tag_of() {
  if constexpr (requires { Codec<T>::kTag; }) {
    return Codec<T>::kTag;
  } else {
    return 'u';
  }
}

// Text given as a literal, a const char* or a string_view is stored as a
// std::string: put("k", "v") works, and reads back with get<std::string>.
template <typename T>
inline constexpr bool kIsStringLike =
    std::is_same_v<T, std::string_view> || std::is_same_v<std::decay_t<T>, const char*> ||
    std::is_same_v<std::decay_t<T>, char*>;

// The stored form of a value: tag byte then payload.
template <typename T>
std::string encode_value(const T& v) {
  if constexpr (kIsStringLike<T>) {
    std::string out(1, Codec<std::string>::kTag);
    out.append(std::string_view(v));
    return out;
  } else {
    static_assert(requires(std::string& out) { Codec<T>::encode(v, out); },
                  "dobj: this type has no storage codec. Use an integer, double, bool, "
                  "std::string, Bytes or Json, or specialize dobj::Codec<T> (see codec.h).");
    std::string out(1, tag_of<T>());
    Codec<T>::encode(v, out);
    return out;
  }
}

// A stored value of any JSON-readable tag as Json. A template (only Json is
// defined, in storage.cc) so that the call in decode_value depends on T, and
// Json need only be a complete type where a Json value is read.
template <typename J>
J decode_json_any(std::string_view stored);
template <>
Json decode_json_any<Json>(std::string_view stored);

template <typename T>
T decode_value(std::string_view stored) {
  if constexpr (std::is_same_v<T, Json>) {
    return decode_json_any<T>(stored);
  } else {
    constexpr char kWanted = tag_of<T>();
    if (stored.empty() || stored[0] != kWanted) {
      throw_type_mismatch(stored.empty() ? '\0' : stored[0], tag_name(kWanted));
    }
    return Codec<T>::decode(stored.substr(1));
  }
}

}  // namespace internal
}  // namespace dobj
