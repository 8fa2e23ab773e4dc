// expect: conversion from .*long.* to non-scalar type .*std::.*string
#include "dobj/object.h"

class Counter : public dobj::DurableObject {
 public:
  using DurableObject::DurableObject;
  dobj::Task<int64_t> add(int64_t n) { co_return n; }
  static constexpr auto kMethods = dobj::methods(dobj::Method{"add", &Counter::add});
};

dobj::Task<void> caller(dobj::Stub stub) {
  std::string s = co_await stub.call(&Counter::add, 5);
}
