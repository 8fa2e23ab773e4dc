// IdFactory: makes and checks the IDs of one namespace.
//
// Each namespace has its own 32-byte key, derived from the server secret and
// the binding name, so IDs of one namespace fail the check of another. An ID is
// base (16 bytes) + check (16 bytes), check = HMAC-SHA256(key, "check" || base).
// id_from_name's base is HMAC-SHA256(key, "name" || name), so it is stable for
// as long as the server secret is.
//
// Immutable after construction; safe to use from any thread (from_name keeps
// a per-thread cache of recent names).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "dobj/id.h"
#include "dobj/status.h"

namespace dobj::internal {

using Secret = std::array<uint8_t, 32>;

// HMAC-SHA256 under one key, with the key's inner and outer blocks hashed
// once: OpenSSL's one-shot HMAC() looks the digest up and hashes both blocks
// on every call (about 20,000 instructions; this: a tenth). Thread-safe.
class HmacSha256 {
 public:
  HmacSha256(const uint8_t* key, size_t key_len);
  ~HmacSha256();
  HmacSha256(const HmacSha256&) = delete;
  HmacSha256& operator=(const HmacSha256&) = delete;
  // HMAC(key, label || 0 || data).
  void mac(std::string_view label, const uint8_t* data, size_t len, uint8_t out[32]) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

class IdFactory {
 public:
  // The per-thread cache of recent names is bounded by the bytes of its
  // names, not their count (a count alone let 15 KB names fill gigabytes).
  static constexpr size_t kNameCacheBytes = 4 << 20;  // per thread and namespace

  IdFactory(const Secret& server_secret, std::string namespace_name);

  // Throws dobj::Error(kInvalidArgument) for a name over ObjectId::kMaxNameBytes.
  ObjectId from_name(std::string_view name) const;
  Result<ObjectId> from_string(std::string_view hex) const;
  ObjectId unique() const;

 private:
  ObjectId compute_from_name(std::string_view name) const;
  ObjectId with_check(const uint8_t* base, std::optional<std::string> name) const;
  std::shared_ptr<const HmacSha256> mac_;  // keyed with the namespace's key
  std::string namespace_name_;
  uint64_t instance_;  // unique per factory in the process, for the name cache
};

// Reads DIR/secret, creating it (32 random bytes, mode 0600) on first start.
// The secret is never logged.
Result<Secret> load_or_create_secret(const std::string& data_dir);

}  // namespace dobj::internal
