#include "ids/id_factory.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <atomic>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "base/fs.h"
#include "dobj/status.h"
#include "base/hex.h"

namespace dobj {

std::string ObjectId::to_string() const { return internal::to_hex(bytes_.data(), bytes_.size()); }

uint64_t ObjectId::hash() const {
  // The base is already a keyed hash or random bytes: its first 8 bytes are uniform.
  uint64_t h;
  std::memcpy(&h, bytes_.data(), sizeof h);
  return h;
}

namespace internal {
namespace {

void hmac(const uint8_t* key, size_t key_len, std::string_view label, const uint8_t* data,
          size_t len, uint8_t out[32]) {
  std::string msg(label);
  msg.push_back('\0');
  msg.append(reinterpret_cast<const char*>(data), len);
  unsigned int out_len = 32;
  HMAC(EVP_sha256(), key, static_cast<int>(key_len), reinterpret_cast<const uint8_t*>(msg.data()),
       msg.size(), out, &out_len);
}

}  // namespace

IdFactory::IdFactory(const Secret& server_secret, std::string namespace_name)
    : namespace_name_(std::move(namespace_name)) {
  static std::atomic<uint64_t> next_instance{1};
  instance_ = next_instance.fetch_add(1);
  hmac(server_secret.data(), server_secret.size(), "namespace",
       reinterpret_cast<const uint8_t*>(namespace_name_.data()), namespace_name_.size(),
       key_.data());
}

ObjectId IdFactory::with_check(const uint8_t* base, std::optional<std::string> name) const {
  uint8_t check[32];
  hmac(key_.data(), key_.size(), "check", base, 16, check);
  ObjectId::Bytes bytes;
  std::memcpy(bytes.data(), base, 16);
  std::memcpy(bytes.data() + 16, check, 16);
  return ObjectId(bytes, std::move(name));
}

ObjectId IdFactory::from_name(std::string_view name) const {
  // Two HMACs per call showed as 6% of a hot counter's CPU: keep the IDs of
  // recent names per thread (the factory is shared; the cache is not).
  // Keyed by instance number, not address: a factory made later at the same
  // address may have another secret.
  if (name.size() > ObjectId::kMaxNameBytes) {
    throw Error(Code::kInvalidArgument, "an object name may be at most " +
                                            std::to_string(ObjectId::kMaxNameBytes) +
                                            " bytes, got " + std::to_string(name.size()));
  }
  struct Cache {
    uint64_t owner = 0;
    size_t bytes = 0;  // of the entries: names and IDs, with a map node's overhead
    std::unordered_map<std::string, ObjectId::Bytes> ids;
  };
  thread_local std::vector<Cache> caches;
  Cache* cache = nullptr;
  for (auto& c : caches) {
    if (c.owner == instance_) cache = &c;
  }
  if (!cache) {
    if (caches.size() >= 64) caches.clear();  // factories come and go in tests
    cache = &caches.emplace_back(Cache{instance_, 0, {}});
  }
  std::string key(name);
  if (auto it = cache->ids.find(key); it != cache->ids.end()) return ObjectId(it->second, key);
  ObjectId id = compute_from_name(name);
  size_t entry = key.size() + sizeof(ObjectId::Bytes) + 64;
  if (cache->bytes + entry > kNameCacheBytes) {
    std::unordered_map<std::string, ObjectId::Bytes>().swap(cache->ids);  // frees the buckets
    cache->bytes = 0;
  }
  cache->bytes += entry;
  cache->ids.emplace(std::move(key), id.bytes());
  return id;
}

ObjectId IdFactory::compute_from_name(std::string_view name) const {
  uint8_t base[32];
  hmac(key_.data(), key_.size(), "name", reinterpret_cast<const uint8_t*>(name.data()), name.size(),
       base);
  return with_check(base, std::string(name));
}

Result<ObjectId> IdFactory::from_string(std::string_view hex) const {
  if (hex.size() != 2 * ObjectId::kSize) {
    return Status(Code::kInvalidArgument, "invalid object ID: expected 64 hex digits, got " +
                                              std::to_string(hex.size()) + " characters");
  }
  auto bytes = from_hex_lower(hex);
  if (!bytes) {
    return Status(Code::kInvalidArgument,
                  "invalid object ID: only lowercase hex digits 0-9a-f are allowed");
  }
  ObjectId expected = with_check(bytes->data(), std::nullopt);
  if (CRYPTO_memcmp(expected.bytes().data() + 16, bytes->data() + 16, 16) != 0) {
    return Status(Code::kInvalidArgument, "invalid object ID: it was not made by namespace " +
                                              namespace_name_ +
                                              " (wrong namespace, or a changed digit)");
  }
  return expected;
}

ObjectId IdFactory::unique() const {
  uint8_t base[16];
  if (RAND_bytes(base, sizeof base) != 1) {
    // The OpenSSL RNG failing is not something to limp on with a weak ID.
    std::abort();
  }
  return with_check(base, std::nullopt);
}

Result<Secret> load_or_create_secret(const std::string& data_dir) {
  std::string path = data_dir + "/secret";
  auto existing = read_file(path);
  Secret secret;
  if (existing) {
    if (existing->size() != secret.size()) {
      return Status(Code::kInternal, path + " is damaged: expected 32 bytes");
    }
    std::memcpy(secret.data(), existing->data(), secret.size());
    return secret;
  }
  if (existing.status().code() != Code::kNotFound) return existing.status();
  if (RAND_bytes(secret.data(), static_cast<int>(secret.size())) != 1) {
    return Status(Code::kInternal, "cannot generate the server secret");
  }
  Status st = write_file_atomic(
      path, std::string(reinterpret_cast<const char*>(secret.data()), secret.size()), 0600);
  if (!st) return st;
  return secret;
}

}  // namespace internal
}  // namespace dobj
