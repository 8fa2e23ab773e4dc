// JSON from outside (request bodies, stored values): parse_json must refuse
// what it cannot take with an error, never crash or recurse without bound,
// and what it accepts must survive a write and a read back (as the KV API
// stores it).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "dobj/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  dobj::Result<dobj::Json> j = dobj::parse_json(text);
  if (!j) {
    if (j.status().code() != dobj::Code::kInvalidArgument) std::abort();
    return 0;
  }
  std::string stored = dobj::internal::encode_value(*j);
  dobj::Json back = dobj::internal::decode_value<dobj::Json>(stored);
  if (back != *j && !(j->is_number_float() && back.is_number_float())) std::abort();
  // Any stored bytes, read as JSON: an error, never a crash.
  try {
    (void)dobj::internal::decode_value<dobj::Json>(std::string("j") + std::string(text));
  } catch (const dobj::Error&) {
  }
  return 0;
}
