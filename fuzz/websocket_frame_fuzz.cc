// The server's WebSocket frame reader on any bytes, fed in pieces as a socket
// delivers them: it must never read outside the buffer, never hold more than
// its message limit, and stop at the first error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "base/websocket_frame.h"

using dobj::internal::ws::Event;
using dobj::internal::ws::FrameReader;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kMax = 64 * 1024;
  FrameReader reader(/*expect_masked=*/true, kMax);
  std::string buf;
  size_t pos = 0;
  // The first byte picks the piece size, so one input covers many splits.
  size_t piece = size > 0 ? 1 + data[0] % 64 : 1;
  for (size_t off = size > 0 ? 1 : 0; off < size; off += piece) {
    buf.append(reinterpret_cast<const char*>(data) + off, std::min(piece, size - off));
    for (;;) {
      Event e = reader.next(buf, pos);
      if (pos > buf.size()) std::abort();
      if (reader.pending_bytes() > kMax) std::abort();
      if (e.kind == Event::kMessage && e.payload.size() > kMax) std::abort();
      if (e.kind == Event::kError) return 0;
      if (e.kind == Event::kNeedMore) break;
    }
    buf.erase(0, pos);
    pos = 0;
  }
  return 0;
}
