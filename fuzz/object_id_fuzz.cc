// ID strings from clients: id_from_string takes only what one of its own
// namespace made, and a name of any bytes (up to the limit) gives a stable ID.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "dobj/status.h"
#include "ids/id_factory.h"

using dobj::internal::IdFactory;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const IdFactory ids(dobj::internal::Secret{}, "FUZZ");
  static const IdFactory other(dobj::internal::Secret{}, "OTHER");
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto id = ids.from_string(text);
  if (id) {
    if (id->to_string() != text) std::abort();
    if (other.from_string(text)) std::abort();  // another namespace's check
  }
  try {
    dobj::ObjectId named = ids.from_name(text);
    if (named.to_string().size() != 64 || !ids.from_string(named.to_string())) std::abort();
    if (!(ids.from_name(text) == named)) std::abort();
  } catch (const dobj::Error& e) {
    if (size <= dobj::ObjectId::kMaxNameBytes) std::abort();
  }
  return 0;
}
