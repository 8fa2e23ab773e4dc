// crypto.subtle's natives: digests, HMAC, and the asymmetric keys and AES-GCM
// a Worker verifies tokens and seals data with, all through OpenSSL 3.
//
// Asymmetric keys travel between JavaScript and here as DER: PKCS #8 for a
// private key, SubjectPublicKeyInfo for a public one (the prelude's
// CryptoKey keeps the bytes). Each call parses its key again; verifying a
// token costs far more than that. Kinds are "RSA", "EC" (P-256, P-384,
// P-521) and "Ed25519". Errors are thrown as JavaScript Errors with a plain
// message; the prelude gives them WebCrypto's names (DataError,
// OperationError).
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "js/vm.h"

namespace dobj::js {
namespace {

using Info = v8::FunctionCallbackInfo<v8::Value>;
using Bytes = std::vector<unsigned char>;

template <typename T, void (*Free)(T*)>
struct Freer {
  void operator()(T* p) const { Free(p); }
};
using PKey = std::unique_ptr<EVP_PKEY, Freer<EVP_PKEY, EVP_PKEY_free>>;
using PKeyCtx = std::unique_ptr<EVP_PKEY_CTX, Freer<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Freer<EVP_MD_CTX, EVP_MD_CTX_free>>;
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, Freer<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>>;
using Bn = std::unique_ptr<BIGNUM, Freer<BIGNUM, BN_free>>;
using ParamBld = std::unique_ptr<OSSL_PARAM_BLD, Freer<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using Params = std::unique_ptr<OSSL_PARAM, Freer<OSSL_PARAM, OSSL_PARAM_free>>;
using EcdsaSig = std::unique_ptr<ECDSA_SIG, Freer<ECDSA_SIG, ECDSA_SIG_free>>;
using Pkcs8 = std::unique_ptr<PKCS8_PRIV_KEY_INFO, Freer<PKCS8_PRIV_KEY_INFO, PKCS8_PRIV_KEY_INFO_free>>;

// A failure of a call, with the message JavaScript sees.
struct CryptoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Vm& vm_of(const Info& info) { return *static_cast<Vm*>(info.GetIsolate()->GetData(0)); }

// crypto.subtle's hash names.
const EVP_MD* digest_named(const std::string& name) {
  return name == "SHA-1"     ? EVP_sha1()
         : name == "SHA-256" ? EVP_sha256()
         : name == "SHA-384" ? EVP_sha384()
         : name == "SHA-512" ? EVP_sha512()
         : name == "MD5"     ? EVP_md5()
                             : nullptr;
}

Bytes bytes_of(Vm& vm, v8::Local<v8::Value> v) {
  std::string s = vm.body_bytes(v);
  return Bytes(s.begin(), s.end());
}

v8::Local<v8::Value> buffer(Vm& vm, const Bytes& b) { return array_buffer(vm.isolate(), b.data(), b.size()); }

// Runs fn; an OpenSSL or argument failure becomes a JavaScript Error.
template <typename F>
void crypto_call(const Info& info, F fn) {
  try {
    fn();
  } catch (const CryptoError& e) {
    ERR_clear_error();
    info.GetIsolate()->ThrowException(v8::Exception::Error(vm_of(info).str(e.what())));
  }
}

const EVP_MD* md_named(const std::string& name) {
  const EVP_MD* md = digest_named(name);
  if (!md || name == "MD5") throw CryptoError("unsupported hash " + name);
  return md;
}

// "P-256" -> OpenSSL's group name, and the size of a coordinate.
const char* group_of(const std::string& curve, size_t* field) {
  struct Curve {
    const char* name;
    const char* group;
    size_t field;
  };
  static constexpr Curve kCurves[] = {{"P-256", "prime256v1", 32}, {"P-384", "secp384r1", 48}, {"P-521", "secp521r1", 66}};
  for (const Curve& c : kCurves) {
    if (curve == c.name) {
      *field = c.field;
      return c.group;
    }
  }
  throw CryptoError("unsupported curve " + curve);
}

std::string curve_of(const EVP_PKEY* key) {
  char name[64] = {};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len) != 1) return "";
  std::string n(name, len);
  return n == "prime256v1" ? "P-256" : n == "secp384r1" ? "P-384" : n == "secp521r1" ? "P-521" : n;
}

size_t field_bytes(const EVP_PKEY* key) { return static_cast<size_t>((EVP_PKEY_get_bits(key) + 7) / 8); }

bool is_kind(const EVP_PKEY* key, const std::string& kind) {
  const char* type = kind == "RSA" ? "RSA" : kind == "EC" ? "EC" : kind == "Ed25519" ? "ED25519" : nullptr;
  return type && EVP_PKEY_is_a(key, type) == 1;
}

PKey parse(const Bytes& der, bool is_private) {
  const unsigned char* p = der.data();
  EVP_PKEY* key = is_private ? d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(der.size()))
                             : d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size()));
  if (!key || p != der.data() + der.size()) {
    EVP_PKEY_free(key);
    throw CryptoError(is_private ? "not a PKCS #8 private key" : "not a SubjectPublicKeyInfo public key");
  }
  return PKey(key);
}

Bytes spki_of(EVP_PKEY* key) {
  int n = i2d_PUBKEY(key, nullptr);
  if (n <= 0) throw CryptoError("the public key cannot be encoded");
  Bytes out(static_cast<size_t>(n));
  unsigned char* p = out.data();
  i2d_PUBKEY(key, &p);
  return out;
}

Bytes pkcs8_of(EVP_PKEY* key) {
  Pkcs8 info(EVP_PKEY2PKCS8(key));
  if (!info) throw CryptoError("the private key cannot be encoded");
  int n = i2d_PKCS8_PRIV_KEY_INFO(info.get(), nullptr);
  Bytes out(static_cast<size_t>(n));
  unsigned char* p = out.data();
  i2d_PKCS8_PRIV_KEY_INFO(info.get(), &p);
  return out;
}

Bytes bn_bytes(const BIGNUM* bn, size_t pad = 0) {
  size_t n = pad ? pad : static_cast<size_t>(BN_num_bytes(bn));
  Bytes out(n);
  if (BN_bn2binpad(bn, out.data(), static_cast<int>(n)) < 0) throw CryptoError("a number does not fit");
  return out;
}

Bytes bn_param(const EVP_PKEY* key, const char* name, size_t pad = 0) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) return {};
  Bn bn(raw);
  return bn_bytes(bn.get(), pad);
}

// The public key as the raw format has it: an EC key's uncompressed point,
// an Ed25519 key's 32 bytes.
Bytes raw_public(const EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "ED25519") == 1) {
    Bytes x(32);
    size_t n = x.size();
    if (EVP_PKEY_get_raw_public_key(key, x.data(), &n) != 1 || n != x.size()) throw CryptoError("the Ed25519 key cannot be read");
    return x;
  }
  Bytes point(1 + 2 * field_bytes(key));
  size_t n = 0;
  EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size(), &n);
  if (n != point.size()) throw CryptoError("the EC key's point cannot be read");
  return point;
}

// A JWK's RSA numbers, in the order keyFromParts and keyParts take them.
constexpr const char* kRsaParts[] = {OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
                                     OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
                                     OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
                                     OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};

// What JavaScript keeps of a key: [der, isPrivate, modulus bits, public
// exponent, curve].
v8::Local<v8::Value> described(Vm& vm, EVP_PKEY* key, bool is_private) {
  v8::Local<v8::Context> ctx = vm.context();
  v8::Local<v8::Array> out = v8::Array::New(vm.isolate(), 5);
  discard(out->Set(ctx, 0, buffer(vm, is_private ? pkcs8_of(key) : spki_of(key))));
  discard(out->Set(ctx, 1, v8::Boolean::New(vm.isolate(), is_private)));
  bool rsa = EVP_PKEY_is_a(key, "RSA") == 1;
  discard(out->Set(ctx, 2, v8::Integer::New(vm.isolate(), rsa ? EVP_PKEY_get_bits(key) : 0)));
  discard(out->Set(ctx, 3, buffer(vm, rsa ? bn_param(key, OSSL_PKEY_PARAM_RSA_E) : Bytes{})));
  discard(out->Set(ctx, 4, vm.str(EVP_PKEY_is_a(key, "EC") == 1 ? curve_of(key) : "")));
  return out;
}

PKey from_params(const char* type, OSSL_PARAM_BLD* bld, bool is_private) {
  Params params(OSSL_PARAM_BLD_to_param(bld));
  PKeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, is_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    throw CryptoError("the key's parameters do not make a key");
  }
  return PKey(key);
}

// An EC public key from its uncompressed point (raw format, or a JWK's x
// and y), with its private scalar when given.
PKey ec_key(const std::string& curve, const Bytes& point, const Bytes& d) {
  size_t field = 0;
  const char* group = group_of(curve, &field);
  if (point.size() != 1 + 2 * field || point[0] != 4) throw CryptoError("not an uncompressed point on " + curve);
  ParamBld bld(OSSL_PARAM_BLD_new());
  OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
  OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  Bn scalar;
  if (!d.empty()) {
    scalar.reset(BN_bin2bn(d.data(), static_cast<int>(d.size()), nullptr));
    OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, scalar.get());
  }
  PKey key = from_params("EC", bld.get(), !d.empty());
  return key;
}

PKey ed25519_key(const Bytes& x, const Bytes& d) {
  EVP_PKEY* key = d.empty() ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, x.data(), x.size())
                            : EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, d.data(), d.size());
  if (!key) throw CryptoError("not an Ed25519 key of 32 bytes");
  PKey out(key);
  if (!d.empty() && !x.empty()) {
    Bytes derived(32);
    size_t n = derived.size();
    EVP_PKEY_get_raw_public_key(key, derived.data(), &n);
    if (derived != x) throw CryptoError("the JWK's x is not the public key of its d");
  }
  return out;
}

Bytes element(Vm& vm, v8::Local<v8::Array> parts, uint32_t i) {
  v8::Local<v8::Value> v;
  if (!parts->Get(vm.context(), i).ToLocal(&v) || v->IsUndefined() || v->IsNull()) return {};
  return bytes_of(vm, v);
}

// ECDSA signatures are r || s in WebCrypto, DER in OpenSSL.
Bytes raw_signature(const Bytes& der, size_t field) {
  const unsigned char* p = der.data();
  EcdsaSig sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) throw CryptoError("the signature cannot be decoded");
  Bytes out = bn_bytes(ECDSA_SIG_get0_r(sig.get()), field);
  Bytes s = bn_bytes(ECDSA_SIG_get0_s(sig.get()), field);
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

std::optional<Bytes> der_signature(const Bytes& raw, size_t field) {
  if (raw.size() != 2 * field) return std::nullopt;
  EcdsaSig sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(raw.data(), static_cast<int>(field), nullptr);
  BIGNUM* s = BN_bin2bn(raw.data() + field, static_cast<int>(field), nullptr);
  ECDSA_SIG_set0(sig.get(), r, s);
  int n = i2d_ECDSA_SIG(sig.get(), nullptr);
  Bytes out(static_cast<size_t>(n));
  unsigned char* p = out.data();
  i2d_ECDSA_SIG(sig.get(), &p);
  return out;
}

// A digest-sign or -verify context for the key (RSA-PSS when salt >= 0).
MdCtx signing(EVP_PKEY* key, const std::string& kind, const std::string& hash, int salt, bool sign) {
  const EVP_MD* md = kind == "Ed25519" ? nullptr : md_named(hash);
  MdCtx m(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  int ok = sign ? EVP_DigestSignInit(m.get(), &pctx, md, nullptr, key)
                : EVP_DigestVerifyInit(m.get(), &pctx, md, nullptr, key);
  if (ok != 1) throw CryptoError("the key cannot be used with this algorithm");
  if (kind == "RSA" && salt >= 0 &&
      (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
       EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt) != 1)) {
    throw CryptoError("RSA-PSS with this salt length is not possible");
  }
  return m;
}

}  // namespace

void install_crypto(Vm& vm, v8::Local<v8::Object> natives) {
  v8::Local<v8::Context> ctx = vm.context();
  auto add = [&](const char* name, v8::FunctionCallback fn) {
    discard(natives->Set(ctx, vm.str(name), v8::Function::New(ctx, fn).ToLocalChecked()));
  };

  // digest(hash name, data).
  add("digest", [](const Info& info) {
    Vm& vm = vm_of(info);
    crypto_call(info, [&] {
      const EVP_MD* md = digest_named(vm.utf8(info[0]));
      if (!md) throw CryptoError("crypto.subtle.digest: unsupported algorithm " + vm.utf8(info[0]));
      std::string data = vm.body_bytes(info[1]);
      Bytes out(EVP_MAX_MD_SIZE);
      unsigned int len = 0;
      EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr);
      out.resize(len);
      info.GetReturnValue().Set(buffer(vm, out));
    });
  });
  // hmac(hash name, key bytes, data bytes): crypto.subtle.sign/verify's HMAC.
  add("hmac", [](const Info& info) {
    Vm& vm = vm_of(info);
    crypto_call(info, [&] {
      const EVP_MD* md = md_named(vm.utf8(info[0]));
      std::string key = vm.body_bytes(info[1]);
      std::string data = vm.body_bytes(info[2]);
      Bytes out(EVP_MAX_MD_SIZE);
      unsigned int len = 0;
      HMAC(md, key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
           data.size(), out.data(), &len);
      out.resize(len);
      info.GetReturnValue().Set(buffer(vm, out));
    });
  });
  // Equal bytes, compared in a time that does not depend on where they differ.
  add("timingSafeEqual", [](const Info& info) {
    Vm& vm = vm_of(info);
    std::string a = vm.body_bytes(info[0]);
    std::string b = vm.body_bytes(info[1]);
    info.GetReturnValue().Set(a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0);
  });

  // pbkdf2(hash, password, salt, iterations, bytes) and hkdf(hash, key,
  // salt, info, bytes): crypto.subtle.deriveBits's derived bytes.
  add("pbkdf2", [](const Info& info) {
    Vm& vm = vm_of(info);
    crypto_call(info, [&] {
      const EVP_MD* md = md_named(vm.utf8(info[0]));
      std::string password = vm.body_bytes(info[1]);
      Bytes salt = bytes_of(vm, info[2]);
      int iterations = info[3]->Int32Value(vm.context()).FromMaybe(0);
      int n = info[4]->Int32Value(vm.context()).FromMaybe(0);
      if (iterations <= 0) throw CryptoError("PBKDF2 needs at least one iteration");
      Bytes out(static_cast<size_t>(n));
      if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(), static_cast<int>(salt.size()),
                            iterations, md, n, out.data()) != 1) {
        throw CryptoError("PBKDF2 failed");
      }
      info.GetReturnValue().Set(buffer(vm, out));
    });
  });
  add("hkdf", [](const Info& info) {
    Vm& vm = vm_of(info);
    crypto_call(info, [&] {
      const EVP_MD* md = md_named(vm.utf8(info[0]));
      Bytes key = bytes_of(vm, info[1]), salt = bytes_of(vm, info[2]), extra = bytes_of(vm, info[3]);
      size_t n = static_cast<size_t>(info[4]->Int32Value(vm.context()).FromMaybe(0));
      PKeyCtx ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr));
      Bytes out(n);
      if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 || EVP_PKEY_CTX_set_hkdf_md(ctx.get(), md) != 1 ||
          EVP_PKEY_CTX_set1_hkdf_salt(ctx.get(), salt.data(), static_cast<int>(salt.size())) != 1 ||
          EVP_PKEY_CTX_set1_hkdf_key(ctx.get(), key.data(), static_cast<int>(key.size())) != 1 ||
          EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), extra.data(), static_cast<int>(extra.size())) != 1 ||
          EVP_PKEY_derive(ctx.get(), out.data(), &n) != 1) {
        throw CryptoError("HKDF cannot derive " + std::to_string(out.size()) + " bytes with this hash");
      }
      out.resize(n);
      info.GetReturnValue().Set(buffer(vm, out));
    });
  });

  // keyImport(kind, format "spki"|"pkcs8"|"raw", bytes, curve): a key's
  // description (see described), checked to be of the kind and curve.
  add("keyImport", [](const Info& info) {
    Vm& vm = vm_of(info);
    crypto_call(info, [&] {
      std::string kind = vm.utf8(info[0]);
      std::string format = vm.utf8(info[1]);
      Bytes data = bytes_of(vm, info[2]);
      std::string curve = vm.utf8(info[3]);
      PKey key;
      bool is_private = format == "pkcs8";
      if (format == "spki" || format == "pkcs8") {
        key = parse(data, is_private);
      } else if (format == "raw" && kind == "EC") {
        key = ec_key(curve, data, {});
      } else if (format == "raw" && kind == "Ed25519") {
        key = ed25519_key(data, {});
      } else {
        throw CryptoError("the " + format + " format does not hold a " + kind + " key");
      }
      if (!is_kind(key.get(), kind)) throw CryptoError("the key is not a " + kind + " key");
      if (kind == "EC" && curve_of(key.get()) != curve) {
        throw CryptoError("the key is on " + curve_of(key.get()) + ", not " + curve);
      }
      info.GetReturnValue().Set(described(vm, key.get(), is_private));
    });
  });
  // keyFromParts(kind, curve, parts): a JWK's numbers, decoded. RSA: n, e,
  // d, p, q, dp, dq, qi; EC: x, y, d; Ed25519: x, d (d absent: public).
  add("keyFromParts", [](const Info& info) {
    Vm& vm = vm_of(info);
    crypto_call(info, [&] {
      std::string kind = vm.utf8(info[0]);
      std::string curve = vm.utf8(info[1]);
      auto parts = info[2].As<v8::Array>();
      PKey key;
      bool is_private = false;
      if (kind == "RSA") {
        ParamBld bld(OSSL_PARAM_BLD_new());
        std::vector<Bn> numbers;
        for (uint32_t i = 0; i < 8; ++i) {
          Bytes b = element(vm, parts, i);
          if (b.empty()) {
            if (i < 2) throw CryptoError("an RSA JWK needs n and e");
            if (i == 2) break;
            throw CryptoError("an RSA private JWK needs d, p, q, dp, dq and qi");
          }
          numbers.emplace_back(BN_bin2bn(b.data(), static_cast<int>(b.size()), nullptr));
          OSSL_PARAM_BLD_push_BN(bld.get(), kRsaParts[i], numbers.back().get());
        }
        is_private = numbers.size() > 2;
        key = from_params("RSA", bld.get(), is_private);
      } else if (kind == "EC") {
        size_t field = 0;
        group_of(curve, &field);
        Bytes x = element(vm, parts, 0), y = element(vm, parts, 1), d = element(vm, parts, 2);
        if (x.size() != field || y.size() != field) throw CryptoError("an EC JWK's x and y must be " + std::to_string(field) + " bytes on " + curve);
        Bytes point{4};
        point.insert(point.end(), x.begin(), x.end());
        point.insert(point.end(), y.begin(), y.end());
        is_private = !d.empty();
        key = ec_key(curve, point, d);
      } else if (kind == "Ed25519") {
        Bytes x = element(vm, parts, 0), d = element(vm, parts, 1);
        is_private = !d.empty();
        key = ed25519_key(x, d);
      } else {
        throw CryptoError("unsupported key kind " + kind);
      }
      info.GetReturnValue().Set(described(vm, key.get(), is_private));
    });
  });
  // keyParts(kind, der, isPrivate): the numbers of a JWK, as keyFromParts
  // takes them (a public key's without the private ones).
  add("keyParts", [](const Info& info) {
    Vm& vm = vm_of(info);
    crypto_call(info, [&] {
      std::string kind = vm.utf8(info[0]);
      bool is_private = info[2]->BooleanValue(vm.isolate());
      PKey key = parse(bytes_of(vm, info[1]), is_private);
      std::vector<Bytes> parts;
      if (kind == "RSA") {
        for (const char* name : kRsaParts) {
          if (!is_private && parts.size() == 2) break;
          parts.push_back(bn_param(key.get(), name));
        }
      } else if (kind == "EC") {
        size_t field = field_bytes(key.get());
        Bytes point = raw_public(key.get());
        parts.emplace_back(point.begin() + 1, point.begin() + 1 + static_cast<long>(field));
        parts.emplace_back(point.begin() + 1 + static_cast<long>(field), point.end());
        if (is_private) parts.push_back(bn_param(key.get(), OSSL_PKEY_PARAM_PRIV_KEY, field));
      } else if (kind == "Ed25519") {
        parts.push_back(raw_public(key.get()));
        if (is_private) {
          Bytes d(32);
          size_t n = d.size();
          EVP_PKEY_get_raw_private_key(key.get(), d.data(), &n);
          parts.push_back(d);
        }
      }
      v8::Local<v8::Array> out = v8::Array::New(vm.isolate(), static_cast<int>(parts.size()));
      for (uint32_t i = 0; i < parts.size(); ++i) discard(out->Set(vm.context(), i, buffer(vm, parts[i])));
      info.GetReturnValue().Set(out);
    });
  });
  // keyExport(kind, der, isPrivate, format "spki"|"pkcs8"|"raw").
  add("keyExport", [](const Info& info) {
    Vm& vm = vm_of(info);
    crypto_call(info, [&] {
      std::string kind = vm.utf8(info[0]);
      Bytes der = bytes_of(vm, info[1]);
      bool is_private = info[2]->BooleanValue(vm.isolate());
      std::string format = vm.utf8(info[3]);
      if (format == (is_private ? "pkcs8" : "spki")) return info.GetReturnValue().Set(buffer(vm, der));
      if (format != "raw" || is_private || kind == "RSA") {
        throw CryptoError("a " + std::string(is_private ? "private" : "public") + " " + kind +
                          " key cannot be exported as " + format);
      }
      info.GetReturnValue().Set(buffer(vm, raw_public(parse(der, false).get())));
    });
  });
  // keyGenerate(kind, bits or curve): [private description, public one].
  add("keyGenerate", [](const Info& info) {
    Vm& vm = vm_of(info);
    crypto_call(info, [&] {
      std::string kind = vm.utf8(info[0]);
      EVP_PKEY* made = nullptr;
      if (kind == "RSA") {
        int bits = info[1]->Int32Value(vm.context()).FromMaybe(0);
        if (bits < 1024 || bits > 8192 || bits % 8 != 0) throw CryptoError("an RSA modulus of " + std::to_string(bits) + " bits");
        made = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits));
      } else if (kind == "EC") {
        size_t field = 0;
        made = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", group_of(vm.utf8(info[1]), &field));
      } else if (kind == "Ed25519") {
        made = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      }
      if (!made) throw CryptoError("the key could not be generated");
      PKey key(made);
      v8::Local<v8::Array> out = v8::Array::New(vm.isolate(), 2);
      discard(out->Set(vm.context(), 0, described(vm, key.get(), true)));
      discard(out->Set(vm.context(), 1, described(vm, key.get(), false)));
      info.GetReturnValue().Set(out);
    });
  });
  // keySign(kind, pkcs8, hash, data, pss salt or -1).
  add("keySign", [](const Info& info) {
    Vm& vm = vm_of(info);
    crypto_call(info, [&] {
      std::string kind = vm.utf8(info[0]);
      PKey key = parse(bytes_of(vm, info[1]), true);
      std::string data = vm.body_bytes(info[3]);
      MdCtx m = signing(key.get(), kind, vm.utf8(info[2]), info[4]->Int32Value(vm.context()).FromMaybe(-1), true);
      size_t len = 0;
      auto in = reinterpret_cast<const unsigned char*>(data.data());
      if (EVP_DigestSign(m.get(), nullptr, &len, in, data.size()) != 1) throw CryptoError("signing failed");
      Bytes sig(len);
      if (EVP_DigestSign(m.get(), sig.data(), &len, in, data.size()) != 1) throw CryptoError("signing failed");
      sig.resize(len);
      if (kind == "EC") sig = raw_signature(sig, field_bytes(key.get()));
      info.GetReturnValue().Set(buffer(vm, sig));
    });
  });
  // keyVerify(kind, spki, hash, signature, data, pss salt or -1): a bad
  // signature is false, not an error.
  add("keyVerify", [](const Info& info) {
    Vm& vm = vm_of(info);
    crypto_call(info, [&] {
      std::string kind = vm.utf8(info[0]);
      PKey key = parse(bytes_of(vm, info[1]), false);
      Bytes sig = bytes_of(vm, info[3]);
      std::string data = vm.body_bytes(info[4]);
      MdCtx m = signing(key.get(), kind, vm.utf8(info[2]), info[5]->Int32Value(vm.context()).FromMaybe(-1), false);
      if (kind == "EC") {
        auto der = der_signature(sig, field_bytes(key.get()));
        if (!der) return info.GetReturnValue().Set(false);
        sig = std::move(*der);
      }
      int ok = EVP_DigestVerify(m.get(), sig.data(), sig.size(), reinterpret_cast<const unsigned char*>(data.data()),
                                data.size());
      ERR_clear_error();
      info.GetReturnValue().Set(ok == 1);
    });
  });
  // aesGcm(encrypt, key, iv, additional data, tag bytes, data): the
  // ciphertext with its tag appended, or the plaintext (an Error when the
  // tag does not match).
  add("aesGcm", [](const Info& info) {
    Vm& vm = vm_of(info);
    crypto_call(info, [&] {
      bool encrypt = info[0]->BooleanValue(vm.isolate());
      Bytes key = bytes_of(vm, info[1]), iv = bytes_of(vm, info[2]), aad = bytes_of(vm, info[3]);
      int tag = info[4]->Int32Value(vm.context()).FromMaybe(16);
      Bytes data = bytes_of(vm, info[5]);
      const EVP_CIPHER* cipher = key.size() == 16   ? EVP_aes_128_gcm()
                                 : key.size() == 24 ? EVP_aes_192_gcm()
                                 : key.size() == 32 ? EVP_aes_256_gcm()
                                                    : nullptr;
      if (!cipher) throw CryptoError("an AES key must be 128, 192 or 256 bits");
      if (iv.empty()) throw CryptoError("AES-GCM needs an iv");
      if (!encrypt && data.size() < static_cast<size_t>(tag)) throw CryptoError("the data is shorter than its tag");
      CipherCtx c(EVP_CIPHER_CTX_new());
      int len = 0;
      if (EVP_CipherInit_ex(c.get(), cipher, nullptr, nullptr, nullptr, encrypt) != 1 ||
          EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv.size()), nullptr) != 1 ||
          EVP_CipherInit_ex(c.get(), nullptr, nullptr, key.data(), iv.data(), encrypt) != 1 ||
          (!aad.empty() && EVP_CipherUpdate(c.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1)) {
        throw CryptoError("AES-GCM could not start");
      }
      size_t body = encrypt ? data.size() : data.size() - static_cast<size_t>(tag);
      Bytes out(body + (encrypt ? static_cast<size_t>(tag) : 0) + 16);
      if (!encrypt && EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_TAG, tag, data.data() + body) != 1) {
        throw CryptoError("the tag length is not possible");
      }
      int n = 0, last = 0;
      if (EVP_CipherUpdate(c.get(), out.data(), &n, data.data(), static_cast<int>(body)) != 1 ||
          EVP_CipherFinal_ex(c.get(), out.data() + n, &last) != 1) {
        throw CryptoError(encrypt ? "AES-GCM encryption failed" : "the data or its tag was altered (or the key is wrong)");
      }
      size_t total = static_cast<size_t>(n + last);
      if (encrypt) {
        EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, tag, out.data() + total);
        total += static_cast<size_t>(tag);
      }
      out.resize(total);
      info.GetReturnValue().Set(buffer(vm, out));
    });
  });
}

}  // namespace dobj::js
