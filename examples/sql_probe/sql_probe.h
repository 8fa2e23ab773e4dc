// SqlProbe: runs one SQL query on the object's own database per request.
// See README.md beside this file.
#pragma once

#include <dobj/dobj.h>

namespace examples {

class SqlProbe : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<dobj::Response> fetch(dobj::Request req) override;
};

// JSON ↔ SQL values, shared with other examples: null, booleans (as 0/1),
// integers, doubles and strings map directly; arrays and objects bind as
// JSON text; blobs come back as arrays of byte values.
dobj::SqlValue sql_from_json(const dobj::Json& j);

}  // namespace examples
