// The WebSocket wire format (RFC 6455): frame headers, masking, and a reader
// that turns a byte stream into messages and control frames.
//
// Pure functions over bytes, no sockets: the server's connections, the test
// client and the benchmark client share them. The reader enforces the rules a
// server must (client frames masked, control frames short and unfragmented,
// no reserved bits, text that is UTF-8, a message size limit) and reports a
// violation with the close code to send.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dobj::internal::ws {

enum Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Close codes (RFC 6455 section 7.4.1).
inline constexpr int kNormalClosure = 1000;
inline constexpr int kGoingAway = 1001;
inline constexpr int kProtocolError = 1002;
inline constexpr int kNoStatus = 1005;  // reported, never sent
inline constexpr int kAbnormal = 1006;  // reported, never sent: no close frame
inline constexpr int kInvalidPayload = 1007;
inline constexpr int kPolicyViolation = 1008;
inline constexpr int kMessageTooBig = 1009;
inline constexpr int kInternalError = 1011;
inline constexpr int kServiceRestart = 1012;  // reconnect: the server moved or restarts

inline constexpr size_t kMaxHeaderSize = 14;

// Writes the header of one frame into out (kMaxHeaderSize bytes of room) and
// returns its size. With mask (a client's frame) the mask key follows the
// length; the caller masks the payload with apply_mask.
size_t encode_header(uint8_t* out, uint8_t opcode, uint64_t length, bool fin = true,
                     const uint8_t* mask = nullptr);
// XORs data with the 4-byte mask, starting at position `offset` of the payload.
void apply_mask(char* data, size_t size, const uint8_t* mask, size_t offset = 0);
bool valid_utf8(std::string_view s);
// Codes an endpoint may put in a close frame.
bool valid_close_code(int code);
// A whole frame as bytes: header plus payload (masked when mask is given).
std::string encode_frame(uint8_t opcode, std::string_view payload, const uint8_t* mask = nullptr);
// The payload of a close frame: the code (2 bytes) and the reason.
std::string close_payload(int code, std::string_view reason);

// What FrameReader::next found.
struct Event {
  enum Kind {
    kNeedMore,  // the buffer holds no complete frame or message yet
    kMessage,   // a whole data message: opcode kText or kBinary, payload
    kPing,
    kPong,
    kClose,  // close_code (kNoStatus when the frame had none) and payload = reason
    kError,  // a violation: close_code to send and payload = the reason
  };
  Kind kind = kNeedMore;
  uint8_t opcode = 0;
  int close_code = 0;
  std::string payload;
};

class FrameReader {
 public:
  // A server's reader wants masked frames, a client's unmasked ones.
  FrameReader(bool expect_masked, size_t max_message_bytes)
      : expect_masked_(expect_masked), max_message_(max_message_bytes) {}

  // Takes the next event from buf starting at pos, and advances pos past the
  // bytes it used (the caller erases them when done). Unmasks in place.
  // After kError the stream is broken: stop reading.
  Event next(std::string& buf, size_t& pos);

  // Bytes held for a fragmented message not yet complete.
  size_t pending_bytes() const { return fragments_.size(); }

 private:
  Event error(int code, std::string reason);

  bool expect_masked_;
  size_t max_message_;
  bool in_message_ = false;  // a fragmented message is being assembled
  uint8_t message_opcode_ = 0;
  std::string fragments_;
};

}  // namespace dobj::internal::ws
