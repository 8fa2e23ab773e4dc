// expect: this method is not in the class's kMethods table
#include "dobj/object.h"

class Counter : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<int64_t> add(int64_t n) { co_return n; }
  dobj::Task<std::string> name() { co_return "c"; }
  static constexpr auto kMethods = dobj::methods(dobj::Method{"add", &Counter::add});
};

dobj::Task<void> caller(dobj::Stub stub) { co_await stub.call(&Counter::name); }
