// The batches a cluster node's peers ship it (storage/replication.h): any
// bytes decode to records or to kInvalidArgument, never a crash or a huge
// allocation; records that decode encode back to bytes that decode to the
// same records.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "storage/replication.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using dobj::internal::decode_replica_records;
  using dobj::internal::encode_replica_records;
  auto records = decode_replica_records(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!records.is_ok()) {
    if (records.status().code() != dobj::Code::kInvalidArgument) std::abort();
    return 0;
  }
  auto again = decode_replica_records(encode_replica_records(*records));
  if (!again.is_ok() || again->size() != records->size()) std::abort();
  for (size_t i = 0; i < records->size(); ++i) {
    const auto& a = (*records)[i];
    const auto& b = (*again)[i];
    if (a.kind != b.kind || a.ns != b.ns || a.id != b.id || a.partition != b.partition || a.epoch != b.epoch ||
        a.page_size != b.page_size || a.file != b.file || a.name != b.name || a.history_seq != b.history_seq ||
        a.history_time_ms != b.history_time_ms || a.history_base != b.history_base || a.history != b.history ||
        a.frames.size() != b.frames.size()) {
      std::abort();
    }
    for (size_t f = 0; f < a.frames.size(); ++f) {
      if (a.frames[f].page != b.frames[f].page || a.frames[f].commit_pages != b.frames[f].commit_pages ||
          a.frames[f].data != b.frames[f].data) {
        std::abort();
      }
    }
  }
  return 0;
}
