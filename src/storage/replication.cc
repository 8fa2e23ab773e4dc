#include "storage/replication.h"

#include <cstring>

namespace dobj::internal {
namespace {

void put_u32(std::string& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out += static_cast<char>((v >> s) & 0xff);
}
void put_u64(std::string& out, uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) out += static_cast<char>((v >> s) & 0xff);
}
void put_bytes(std::string& out, std::string_view b) {
  put_u32(out, static_cast<uint32_t>(b.size()));
  out += b;
}

struct Reader {
  std::string_view in;
  bool ok = true;
  uint64_t take(int bytes) {
    if (in.size() < static_cast<size_t>(bytes)) {
      ok = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = v << 8 | static_cast<uint8_t>(in[static_cast<size_t>(i)]);
    in.remove_prefix(static_cast<size_t>(bytes));
    return v;
  }
  std::string bytes(size_t max) {
    uint64_t n = take(4);
    if (!ok || n > in.size() || n > max) {
      ok = false;
      return {};
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
};

constexpr uint32_t kMagic = 0x646f6233;  // "dob3": records end with their history
constexpr uint32_t kMagicV2 = 0x646f6232;  // "dob2": records end with the name ("dobr" did not)
constexpr size_t kMaxName = 4096;
constexpr size_t kMaxFile = size_t{1} << 31;

}  // namespace

std::string encode_replica_records(const std::vector<ReplicaRecord>& records) {
  std::string out;
  put_u32(out, kMagic);
  put_u32(out, static_cast<uint32_t>(records.size()));
  for (const auto& r : records) {
    out += static_cast<char>(r.kind);
    put_bytes(out, r.ns);
    put_bytes(out, r.id);
    put_u32(out, r.partition);
    put_u64(out, static_cast<uint64_t>(r.epoch));
    put_u32(out, r.page_size);
    put_u32(out, static_cast<uint32_t>(r.frames.size()));
    for (const auto& f : r.frames) {
      put_u32(out, f.page);
      put_u32(out, f.commit_pages);
      put_bytes(out, f.data);
    }
    put_bytes(out, r.file);
    out += static_cast<char>(r.name ? 1 : 0);
    if (r.name) put_bytes(out, *r.name);
    put_u64(out, r.history_seq);
    put_u64(out, static_cast<uint64_t>(r.history_time_ms));
    out += static_cast<char>(r.history_base ? 1 : 0);
    put_bytes(out, r.history);
  }
  return out;
}

Result<std::vector<ReplicaRecord>> decode_replica_records(std::string_view bytes) {
  Reader r{bytes};
  auto bad = [] { return Status(Code::kInvalidArgument, "malformed replication records"); };
  uint64_t magic = r.take(4);
  if (magic != kMagic && magic != kMagicV2) return bad();
  uint64_t count = r.take(4);
  std::vector<ReplicaRecord> out;
  for (uint64_t i = 0; i < count && r.ok; ++i) {
    ReplicaRecord rec;
    uint64_t kind = r.take(1);
    if (kind > 4) return bad();
    rec.kind = static_cast<ReplicaRecord::Kind>(kind);
    rec.ns = r.bytes(kMaxName);
    rec.id = r.bytes(kMaxName);
    rec.partition = static_cast<uint32_t>(r.take(4));
    rec.epoch = static_cast<int64_t>(r.take(8));
    rec.page_size = static_cast<uint32_t>(r.take(4));
    uint64_t frames = r.take(4);
    if (!r.ok || frames > r.in.size()) return bad();
    for (uint64_t k = 0; k < frames && r.ok; ++k) {
      WalFrame f;
      f.page = static_cast<uint32_t>(r.take(4));
      f.commit_pages = static_cast<uint32_t>(r.take(4));
      f.data = r.bytes(65536);
      rec.frames.push_back(std::move(f));
    }
    rec.file = r.bytes(kMaxFile);
    uint64_t named = r.take(1);
    if (named > 1) return bad();
    if (named) rec.name = r.bytes(kMaxName);
    if (magic == kMagic) {
      rec.history_seq = r.take(8);
      rec.history_time_ms = static_cast<int64_t>(r.take(8));
      uint64_t base = r.take(1);
      if (base > 1) return bad();
      rec.history_base = base == 1;
      rec.history = r.bytes(kMaxFile);
    }
    if (!r.ok) return bad();
    out.push_back(std::move(rec));
  }
  if (!r.ok || !r.in.empty()) return bad();
  return out;
}

}  // namespace dobj::internal
