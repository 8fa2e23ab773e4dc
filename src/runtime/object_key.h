// ObjectKey: one object of the node, by namespace and ID. The one key of
// every map and message about objects: hosts on a shard, alarm entries,
// reset epochs, admin targets. (ResumeTarget, a coroutine's address, adds
// the shard and the instance's generation, and also names worker runs.)
#pragma once

#include <cstddef>
#include <cstdint>

#include "dobj/id.h"

namespace dobj::internal {

class NamespaceImpl;

struct ObjectKey {
  const NamespaceImpl* ns = nullptr;
  ObjectId id;
  bool operator==(const ObjectKey& o) const { return ns == o.ns && id == o.id; }
};

struct ObjectKeyHash {
  size_t operator()(const ObjectKey& k) const {
    return ObjectIdHash()(k.id) ^ reinterpret_cast<uintptr_t>(k.ns);
  }
};

}  // namespace dobj::internal
