// ObjectId: the name of one Durable Object instance within a namespace.
//
// An ID is 32 bytes, printed as 64 lowercase hex digits: a 16-byte base and a
// 16-byte check. The base is a keyed hash of the name (id_from_name) or random
// bytes (new_unique_id); the check is an HMAC of the base keyed by the
// namespace's secret, so an ID string cannot be forged, mistyped or used with
// another namespace without id_from_string noticing. An ID made from a name
// carries that name (name()); an ID parsed from a string does not.
//
// ObjectId is a plain value: copyable, comparable, usable on any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dobj {

class ObjectId {
 public:
  static constexpr size_t kSize = 32;
  // The longest name id_from_name takes; a longer one is refused with
  // dobj::Error(kInvalidArgument) (400 to a client). A name is kept in memory
  // and in the catalog with its object, so it is bounded like a key.
  static constexpr size_t kMaxNameBytes = 1024;
  using Bytes = std::array<uint8_t, kSize>;

  ObjectId() = default;
  ObjectId(const Bytes& bytes, std::optional<std::string> name)
      : bytes_(bytes), name_(std::move(name)) {}

  // 64 lowercase hex digits.
  std::string to_string() const;
  const Bytes& bytes() const { return bytes_; }
  // The name this ID was made from, when it was made by id_from_name.
  const std::optional<std::string>& name() const { return name_; }
  // A well-mixed 64-bit hash of the ID (its base bytes), for sharding.
  uint64_t hash() const;

  friend bool operator==(const ObjectId& a, const ObjectId& b) { return a.bytes_ == b.bytes_; }
  friend bool operator<(const ObjectId& a, const ObjectId& b) { return a.bytes_ < b.bytes_; }

 private:
  Bytes bytes_{};
  std::optional<std::string> name_;
};

struct ObjectIdHash {
  size_t operator()(const ObjectId& id) const { return static_cast<size_t>(id.hash()); }
};

}  // namespace dobj
