// KvProbe: the key-value storage API, one storage call per route.
// See README.md beside this file and EXAMPLES.md for the contract.
#pragma once

#include <dobj/dobj.h>

namespace examples {

class KvProbe : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<dobj::Response> fetch(dobj::Request req) override;

 private:
  dobj::Response list(const dobj::Request& req);
  dobj::Response batch(const dobj::Json& body);
  dobj::Response transaction(const dobj::Json& body);
};

}  // namespace examples
