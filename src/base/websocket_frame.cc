#include "base/websocket_frame.h"

#include <cstring>

namespace dobj::internal::ws {

size_t encode_header(uint8_t* out, uint8_t opcode, uint64_t length, bool fin,
                     const uint8_t* mask) {
  size_t n = 0;
  out[n++] = static_cast<uint8_t>((fin ? 0x80 : 0) | (opcode & 0x0F));
  uint8_t mask_bit = mask ? 0x80 : 0;
  if (length < 126) {
    out[n++] = static_cast<uint8_t>(mask_bit | length);
  } else if (length <= 0xFFFF) {
    out[n++] = mask_bit | 126;
    out[n++] = static_cast<uint8_t>(length >> 8);
    out[n++] = static_cast<uint8_t>(length);
  } else {
    out[n++] = mask_bit | 127;
    for (int i = 7; i >= 0; --i) out[n++] = static_cast<uint8_t>(length >> (8 * i));
  }
  if (mask) {
    std::memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

void apply_mask(char* data, size_t size, const uint8_t* mask, size_t offset) {
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>(data[i] ^ mask[(offset + i) & 3]);
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // ASCII runs, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Overlong forms, surrogates, and code points past U+10FFFF.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

bool valid_close_code(int code) {
  if (code >= 3000 && code <= 4999) return true;
  switch (code) {
    case 1000: case 1001: case 1002: case 1003: case 1007: case 1008:
    case 1009: case 1010: case 1011: case 1012: case 1013: case 1014:
      return true;
    default:
      return false;
  }
}

std::string encode_frame(uint8_t opcode, std::string_view payload, const uint8_t* mask) {
  uint8_t header[kMaxHeaderSize];
  size_t h = encode_header(header, opcode, payload.size(), true, mask);
  std::string out;
  out.reserve(h + payload.size());
  out.append(reinterpret_cast<const char*>(header), h);
  out.append(payload);
  if (mask) apply_mask(out.data() + h, payload.size(), mask);
  return out;
}

std::string close_payload(int code, std::string_view reason) {
  std::string p;
  p.reserve(2 + reason.size());
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code & 0xFF));
  p.append(reason);
  return p;
}

Event FrameReader::error(int code, std::string reason) {
  Event e;
  e.kind = Event::kError;
  e.close_code = code;
  e.payload = std::move(reason);
  return e;
}

Event FrameReader::next(std::string& buf, size_t& pos) {
  for (;;) {
    size_t avail = buf.size() - pos;
    if (avail < 2) return {};
    const auto* p = reinterpret_cast<const uint8_t*>(buf.data() + pos);
    bool fin = p[0] & 0x80;
    uint8_t opcode = p[0] & 0x0F;
    bool masked = p[1] & 0x80;
    uint64_t len = p[1] & 0x7F;
    size_t h = 2;
    if (p[0] & 0x70) return error(kProtocolError, "reserved bits set (no extension was agreed)");
    if (masked != expect_masked_) {
      return error(kProtocolError, expect_masked_ ? "client frames must be masked"
                                                  : "server frames must not be masked");
    }
    bool control = opcode & 0x08;
    if (control) {
      if (opcode != kClose && opcode != kPing && opcode != kPong) {
        return error(kProtocolError, "unknown opcode " + std::to_string(opcode));
      }
      if (!fin) return error(kProtocolError, "a control frame may not be fragmented");
      if (len > 125) return error(kProtocolError, "a control frame may carry at most 125 bytes");
    } else if (opcode != kContinuation && opcode != kText && opcode != kBinary) {
      return error(kProtocolError, "unknown opcode " + std::to_string(opcode));
    }
    if (len == 126) {
      if (avail < 4) return {};
      len = (uint64_t{p[2]} << 8) | p[3];
      h = 4;
    } else if (len == 127) {
      if (avail < 10) return {};
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
      h = 10;
      if (len >> 63) return error(kProtocolError, "frame length has its top bit set");
    }
    uint8_t mask[4] = {0, 0, 0, 0};
    if (masked) {
      if (avail < h + 4) return {};
      std::memcpy(mask, p + h, 4);
      h += 4;
    }
    if (!control) {
      if (opcode == kContinuation && !in_message_) {
        return error(kProtocolError, "a continuation frame without a message to continue");
      }
      if (opcode != kContinuation && in_message_) {
        return error(kProtocolError, "a new message began before the last one ended");
      }
      size_t so_far = in_message_ ? fragments_.size() : 0;
      if (len > max_message_ || so_far + len > max_message_) {
        return error(kMessageTooBig,
                     "message larger than " + std::to_string(max_message_) + " bytes");
      }
    }
    if (avail - h < len) return {};
    char* payload = buf.data() + pos + h;
    size_t n = static_cast<size_t>(len);
    if (masked) apply_mask(payload, n, mask);
    pos += h + n;
    std::string_view data(payload, n);

    if (control) {
      Event e;
      if (opcode == kPing || opcode == kPong) {
        e.kind = opcode == kPing ? Event::kPing : Event::kPong;
        e.payload.assign(data);
        return e;
      }
      e.kind = Event::kClose;
      if (n == 0) {
        e.close_code = kNoStatus;
        return e;
      }
      if (n == 1) return error(kProtocolError, "a close frame with a 1-byte payload");
      int code = (static_cast<uint8_t>(data[0]) << 8) | static_cast<uint8_t>(data[1]);
      if (!valid_close_code(code)) {
        return error(kProtocolError, "invalid close code " + std::to_string(code));
      }
      std::string_view reason = data.substr(2);
      if (!valid_utf8(reason)) return error(kInvalidPayload, "close reason is not UTF-8");
      e.close_code = code;
      e.payload.assign(reason);
      return e;
    }

    if (opcode != kContinuation && fin) {
      // The common case: a whole message in one frame.
      if (opcode == kText && !valid_utf8(data)) {
        return error(kInvalidPayload, "text message is not valid UTF-8");
      }
      Event e;
      e.kind = Event::kMessage;
      e.opcode = opcode;
      e.payload.assign(data);
      return e;
    }
    if (opcode != kContinuation) {
      in_message_ = true;
      message_opcode_ = opcode;
      fragments_.clear();
    }
    fragments_.append(data);
    if (!fin) continue;
    in_message_ = false;
    if (message_opcode_ == kText && !valid_utf8(fragments_)) {
      return error(kInvalidPayload, "text message is not valid UTF-8");
    }
    Event e;
    e.kind = Event::kMessage;
    e.opcode = message_opcode_;
    e.payload = std::move(fragments_);
    fragments_ = std::string();
    return e;
  }
}

}  // namespace dobj::internal::ws
