#include "ids/id_factory.h"

#include <gtest/gtest.h>
#include <openssl/hmac.h>

#include <cstring>
#include <set>

#include "support/server_process.h"

namespace dobj::internal {
namespace {

Secret secret_of(uint8_t b) {
  Secret s;
  s.fill(b);
  return s;
}

TEST(IdFactory, SameNameGivesSameIdAndCarriesTheName) {
  IdFactory a(secret_of(1), "COUNTER");
  IdFactory again(secret_of(1), "COUNTER");
  ObjectId x = a.from_name("alice");
  EXPECT_EQ(x, again.from_name("alice"));
  EXPECT_EQ(x.to_string().size(), 64u);
  ASSERT_TRUE(x.name().has_value());
  EXPECT_EQ(*x.name(), "alice");
  EXPECT_NE(x, a.from_name("bob"));
}

// HMAC-SHA256(key, label || 0 || data) by OpenSSL's one-shot HMAC().
std::array<uint8_t, 32> reference_mac(const uint8_t* key, size_t key_len, std::string_view label,
                                      const void* data, size_t len) {
  std::string msg(label);
  msg.push_back('\0');
  msg.append(static_cast<const char*>(data), len);
  std::array<uint8_t, 32> out;
  unsigned int n = 32;
  HMAC(EVP_sha256(), key, static_cast<int>(key_len), reinterpret_cast<const uint8_t*>(msg.data()),
       msg.size(), out.data(), &n);
  return out;
}

TEST(HmacSha256, MatchesOpenSslForKeysShorterLongerAndAsLongAsABlock) {
  for (size_t key_len : {0, 1, 32, 63, 64, 65, 200}) {
    std::vector<uint8_t> key(key_len);
    for (size_t i = 0; i < key_len; ++i) key[i] = static_cast<uint8_t>(i * 7 + 3);
    HmacSha256 mac(key.data(), key.size());
    for (std::string data : {std::string(), std::string("alice"), std::string(1000, 'x')}) {
      std::array<uint8_t, 32> got;
      mac.mac("name", reinterpret_cast<const uint8_t*>(data.data()), data.size(), got.data());
      EXPECT_EQ(got, reference_mac(key.data(), key.size(), "name", data.data(), data.size()))
          << "key of " << key_len << " bytes, data of " << data.size();
    }
  }
}

// The IDs of names must never change: a data folder made by an earlier
// version is found again. The construction, computed here step by step.
TEST(IdFactory, NameIdsFollowTheDocumentedConstruction) {
  Secret secret = secret_of(9);
  auto key = reference_mac(secret.data(), secret.size(), "namespace", "COUNTER", 7);
  auto base = reference_mac(key.data(), key.size(), "name", "alice", 5);
  auto check = reference_mac(key.data(), key.size(), "check", base.data(), 16);
  ObjectId id = IdFactory(secret, "COUNTER").from_name("alice");
  EXPECT_EQ(std::memcmp(id.bytes().data(), base.data(), 16), 0);
  EXPECT_EQ(std::memcmp(id.bytes().data() + 16, check.data(), 16), 0);
}

TEST(IdFactory, NamesMapToDifferentIdsInDifferentNamespacesAndSecrets) {
  EXPECT_NE(IdFactory(secret_of(1), "A").from_name("x"),
            IdFactory(secret_of(1), "B").from_name("x"));
  EXPECT_NE(IdFactory(secret_of(1), "A").from_name("x"),
            IdFactory(secret_of(2), "A").from_name("x"));
}

TEST(IdFactory, CachedNamesStillCarryTheirNameAndFollowTheSecret) {
  for (uint8_t b = 1; b <= 3; ++b) {
    // A new factory with another secret, often at the same address.
    IdFactory f(secret_of(b), "N");
    ObjectId first = f.from_name("x");
    ObjectId again = f.from_name("x");
    EXPECT_EQ(first, again);
    EXPECT_EQ(again.name(), std::optional<std::string>("x"));
    IdFactory g(secret_of(static_cast<uint8_t>(b + 100)), "N");
    EXPECT_NE(g.from_name("x"), first);
    EXPECT_TRUE(f.from_string(again.to_string()).is_ok());
  }
}

TEST(IdFactory, NamesOverTheLimitAreRefusedWithAClearError) {
  IdFactory f(secret_of(1), "COUNTER");
  std::string longest(ObjectId::kMaxNameBytes, 'n');
  EXPECT_EQ(*f.from_name(longest).name(), longest);
  try {
    (void)f.from_name(longest + "n");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("at most 1024 bytes"), std::string::npos);
  }
}

TEST(IdFactory, ManyLongNamesStillMapToTheirIdsAfterTheCacheIsFull) {
  // More names than the cache holds by bytes: answers stay exact.
  IdFactory f(secret_of(1), "COUNTER");
  IdFactory fresh(secret_of(1), "COUNTER");
  std::vector<ObjectId> first;
  const int kNames = static_cast<int>(2 * IdFactory::kNameCacheBytes / ObjectId::kMaxNameBytes);
  for (int i = 0; i < kNames; ++i) {
    std::string name(ObjectId::kMaxNameBytes - 8, 'x');
    name += std::to_string(i);
    first.push_back(f.from_name(name));
  }
  for (int i = 0; i < kNames; i += 97) {
    std::string name(ObjectId::kMaxNameBytes - 8, 'x');
    name += std::to_string(i);
    EXPECT_EQ(f.from_name(name), first[static_cast<size_t>(i)]);
    EXPECT_EQ(fresh.from_name(name), first[static_cast<size_t>(i)]);
  }
}

TEST(IdFactory, UniqueIdsNeverRepeat) {
  IdFactory f(secret_of(3), "NS");
  std::set<std::string> seen;
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(seen.insert(f.unique().to_string()).second);
}

TEST(IdFactory, StringRoundTripsButLosesTheName) {
  IdFactory f(secret_of(4), "NS");
  for (ObjectId id : {f.from_name("n"), f.unique()}) {
    auto parsed = f.from_string(id.to_string());
    ASSERT_TRUE(parsed.is_ok()) << parsed.status().message();
    EXPECT_EQ(*parsed, id);
    EXPECT_FALSE(parsed->name().has_value());
  }
}

TEST(IdFactory, RejectsMalformedStringsWithAClearError) {
  IdFactory f(secret_of(5), "NS");
  std::string good = f.unique().to_string();
  std::string upper = good;
  for (char& c : upper) c = static_cast<char>(toupper(c));
  for (const std::string& bad : {std::string(), good.substr(1), good + "0", upper,
                                 std::string(64, 'g'), good.substr(0, 63) + "-"}) {
    auto r = f.from_string(bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("invalid object ID"), std::string::npos);
  }
}

TEST(IdFactory, RejectsEveryFlippedDigit) {
  IdFactory f(secret_of(6), "NS");
  std::string good = f.from_name("x").to_string();
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = bad[i] == '0' ? '1' : '0';
    EXPECT_FALSE(f.from_string(bad).is_ok()) << "digit " << i;
  }
}

TEST(IdFactory, RejectsIdsOfAnotherNamespace) {
  IdFactory a(secret_of(7), "A");
  IdFactory b(secret_of(7), "B");
  auto r = b.from_string(a.unique().to_string());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("namespace B"), std::string::npos);
}

TEST(Secret, IsCreatedOnceAndReadBackAfterwards) {
  test::TempDir dir;
  auto first = load_or_create_secret(dir.path());
  ASSERT_TRUE(first.is_ok());
  auto second = load_or_create_secret(dir.path());
  ASSERT_TRUE(second.is_ok());
  EXPECT_EQ(*first, *second);
  EXPECT_EQ(IdFactory(*first, "N").from_name("x"), IdFactory(*second, "N").from_name("x"));
}

}  // namespace
}  // namespace dobj::internal
