// BankAccount: balances in SQL, transfers in one storage transaction.
// See README.md beside this file.
#pragma once

#include <dobj/dobj.h>

namespace examples {

class BankAccount : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<dobj::Response> fetch(dobj::Request req) override;

 private:
  void ensure_schema();
  dobj::Json balance_of(const std::string& account);
  bool schema_ready_ = false;
};

}  // namespace examples
