// Boxes: C++ values owned by JavaScript objects (a stub, a socket, a relayed
// upgrade), freed when the garbage collector takes the object. The object
// has no properties; only the natives can open it, and only as the type it
// was made with.
#pragma once

#include <v8.h>

#include "js/vm.h"

namespace dobj::js {

template <typename T>
struct Box : BoxBase {
  explicit Box(T v) : value(std::move(v)) {}
  T value;
  // Its address tells the types apart (aligned, as V8 wants of the pointers).
  static inline int64_t type_tag = 0;
};

template <typename T>
v8::Local<v8::Object> box(Vm& vm, T value) {
  v8::Local<v8::Object> handle = vm.box_template()->NewInstance(vm.context()).ToLocalChecked();
  auto* b = new Box<T>(std::move(value));
  handle->SetAlignedPointerInInternalField(0, b);
  handle->SetAlignedPointerInInternalField(1, &Box<T>::type_tag);
  vm.adopt_box(b, handle);
  return handle;
}

// The value in a box of type T, or null for anything else.
template <typename T>
T* unbox(v8::Local<v8::Value> v) {
  if (v.IsEmpty() || !v->IsObject()) return nullptr;
  auto o = v.As<v8::Object>();
  if (o->InternalFieldCount() != 2 || o->GetAlignedPointerFromInternalField(1) != &Box<T>::type_tag) {
    return nullptr;
  }
  return &static_cast<Box<T>*>(o->GetAlignedPointerFromInternalField(0))->value;
}

}  // namespace dobj::js
