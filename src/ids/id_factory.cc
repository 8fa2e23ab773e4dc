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

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

MdCtx new_md_ctx() {
  MdCtx c(EVP_MD_CTX_new());
  if (!c) throw std::bad_alloc();
  return c;
}

void check_ssl(int rc) {
  // SHA-256 on memory cannot fail short of running out of it.
  if (rc != 1) throw std::bad_alloc();
}

}  // namespace

struct HmacSha256::State {
  MdCtx inner = new_md_ctx();  // SHA-256 after (key ^ ipad)
  MdCtx outer = new_md_ctx();  // SHA-256 after (key ^ opad)
};

HmacSha256::HmacSha256(const uint8_t* key, size_t key_len) : state_(std::make_unique<State>()) {
  constexpr size_t kBlock = 64;
  uint8_t block[kBlock] = {};
  if (key_len > kBlock) {
    unsigned int n = 0;
    check_ssl(EVP_Digest(key, key_len, block, &n, EVP_sha256(), nullptr));
  } else if (key_len > 0) {
    std::memcpy(block, key, key_len);
  }
  uint8_t pad[kBlock];
  for (size_t i = 0; i < kBlock; ++i) pad[i] = block[i] ^ 0x36;
  check_ssl(EVP_DigestInit_ex(state_->inner.get(), EVP_sha256(), nullptr));
  check_ssl(EVP_DigestUpdate(state_->inner.get(), pad, kBlock));
  for (size_t i = 0; i < kBlock; ++i) pad[i] = block[i] ^ 0x5c;
  check_ssl(EVP_DigestInit_ex(state_->outer.get(), EVP_sha256(), nullptr));
  check_ssl(EVP_DigestUpdate(state_->outer.get(), pad, kBlock));
  OPENSSL_cleanse(block, sizeof block);
  OPENSSL_cleanse(pad, sizeof pad);
}

HmacSha256::~HmacSha256() = default;

void HmacSha256::mac(std::string_view label, const uint8_t* data, size_t len, uint8_t out[32]) const {
  thread_local MdCtx ctx = new_md_ctx();
  static constexpr uint8_t kZero = 0;
  uint8_t inner[32];
  check_ssl(EVP_MD_CTX_copy_ex(ctx.get(), state_->inner.get()));
  check_ssl(EVP_DigestUpdate(ctx.get(), label.data(), label.size()));
  check_ssl(EVP_DigestUpdate(ctx.get(), &kZero, 1));
  check_ssl(EVP_DigestUpdate(ctx.get(), data, len));
  check_ssl(EVP_DigestFinal_ex(ctx.get(), inner, nullptr));
  check_ssl(EVP_MD_CTX_copy_ex(ctx.get(), state_->outer.get()));
  check_ssl(EVP_DigestUpdate(ctx.get(), inner, sizeof inner));
  check_ssl(EVP_DigestFinal_ex(ctx.get(), out, nullptr));
}

IdFactory::IdFactory(const Secret& server_secret, std::string namespace_name)
    : namespace_name_(std::move(namespace_name)) {
  static std::atomic<uint64_t> next_instance{1};
  instance_ = next_instance.fetch_add(1);
  std::array<uint8_t, 32> key;
  HmacSha256(server_secret.data(), server_secret.size())
      .mac("namespace", reinterpret_cast<const uint8_t*>(namespace_name_.data()),
           namespace_name_.size(), key.data());
  mac_ = std::make_shared<const HmacSha256>(key.data(), key.size());
  OPENSSL_cleanse(key.data(), key.size());
}

ObjectId IdFactory::with_check(const uint8_t* base, std::optional<std::string> name) const {
  uint8_t check[32];
  mac_->mac("check", base, 16, check);
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
  mac_->mac("name", reinterpret_cast<const uint8_t*>(name.data()), name.size(), base);
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
