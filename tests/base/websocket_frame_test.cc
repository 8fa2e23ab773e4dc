// The WebSocket wire format: what a server must accept and what it must refuse.
#include "base/websocket_frame.h"

#include <gtest/gtest.h>

namespace dobj::internal::ws {
namespace {

const uint8_t kMask[4] = {1, 2, 3, 4};

std::string masked(uint8_t opcode, const std::string& payload, bool fin = true) {
  uint8_t h[kMaxHeaderSize];
  size_t n = encode_header(h, opcode, payload.size(), fin, kMask);
  std::string out(reinterpret_cast<char*>(h), n);
  out += payload;
  apply_mask(out.data() + n, payload.size(), kMask);
  return out;
}

Event read_one(std::string bytes, size_t max = 1 << 20) {
  FrameReader r(true, max);
  size_t pos = 0;
  return r.next(bytes, pos);
}

TEST(WebSocketFrame, MessagesOfEveryLengthClassRoundTrip) {
  for (size_t len : {0u, 1u, 125u, 126u, 65535u, 65536u, 200000u}) {
    std::string payload(len, 'x');
    Event e = read_one(masked(kBinary, payload));
    ASSERT_EQ(e.kind, Event::kMessage) << len;
    EXPECT_EQ(e.opcode, kBinary);
    EXPECT_EQ(e.payload, payload);
  }
}

TEST(WebSocketFrame, AByteStreamSplitAnywhereGivesTheSameMessages) {
  std::string stream = masked(kText, "hello") + masked(kText, std::string(300, 'a')) +
                       masked(kPing, "p") + masked(kBinary, "\x01\x02");
  FrameReader r(true, 1 << 20);
  std::string buf;
  size_t pos = 0;
  std::vector<Event> got;
  for (char c : stream) {  // one byte at a time
    buf.push_back(c);
    for (Event e = r.next(buf, pos); e.kind != Event::kNeedMore; e = r.next(buf, pos)) {
      got.push_back(e);
    }
  }
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].payload, "hello");
  EXPECT_EQ(got[1].payload, std::string(300, 'a'));
  EXPECT_EQ(got[2].kind, Event::kPing);
  EXPECT_EQ(got[3].opcode, kBinary);
  EXPECT_EQ(pos, buf.size());
}

TEST(WebSocketFrame, FragmentsAreJoinedAndControlFramesMayComeBetween) {
  std::string s = masked(kText, "hel", false) + masked(kPing, "x") +
                  masked(kContinuation, "lo", false) + masked(kContinuation, "!", true);
  FrameReader r(true, 1 << 20);
  size_t pos = 0;
  Event ping = r.next(s, pos);
  EXPECT_EQ(ping.kind, Event::kPing);
  Event msg = r.next(s, pos);
  ASSERT_EQ(msg.kind, Event::kMessage);
  EXPECT_EQ(msg.payload, "hello!");
  EXPECT_EQ(msg.opcode, kText);
}

TEST(WebSocketFrame, ViolationsGiveTheRightCloseCode) {
  // Unmasked client frame.
  std::string unmasked = encode_frame(kText, "hi");
  EXPECT_EQ(read_one(unmasked).close_code, kProtocolError);
  // Reserved bits.
  std::string rsv = masked(kText, "hi");
  rsv[0] = static_cast<char>(rsv[0] | 0x40);
  EXPECT_EQ(read_one(rsv).close_code, kProtocolError);
  // Unknown opcode.
  EXPECT_EQ(read_one(masked(0x3, "x")).close_code, kProtocolError);
  // Control frame over 125 bytes, and a fragmented one.
  EXPECT_EQ(read_one(masked(kPing, std::string(126, 'p'))).close_code, kProtocolError);
  EXPECT_EQ(read_one(masked(kPing, "p", false)).close_code, kProtocolError);
  // Continuation with nothing to continue; a new message inside another.
  EXPECT_EQ(read_one(masked(kContinuation, "x")).close_code, kProtocolError);
  FrameReader r(true, 1 << 20);
  std::string two = masked(kText, "a", false) + masked(kText, "b");
  size_t pos = 0;
  EXPECT_EQ(r.next(two, pos).close_code, kProtocolError);
  // Text that is not UTF-8 (a lone continuation byte, an overlong form, a surrogate).
  EXPECT_EQ(read_one(masked(kText, "\x80")).close_code, kInvalidPayload);
  EXPECT_EQ(read_one(masked(kText, "\xC0\xAF")).close_code, kInvalidPayload);
  EXPECT_EQ(read_one(masked(kText, "\xED\xA0\x80")).close_code, kInvalidPayload);
  EXPECT_EQ(read_one(masked(kText, "caf\xC3\xA9 \xF0\x9F\x98\x80")).kind, Event::kMessage);
  // Binary is not checked.
  EXPECT_EQ(read_one(masked(kBinary, "\x80")).kind, Event::kMessage);
}

TEST(WebSocketFrame, AMessageOverTheLimitIsRefusedFromItsHeader) {
  // Only the header of a 40 MiB frame: refused before its payload arrives.
  uint8_t h[kMaxHeaderSize];
  size_t n = encode_header(h, kBinary, 40u << 20, true, kMask);
  Event e = read_one(std::string(reinterpret_cast<char*>(h), n), 32u << 20);
  EXPECT_EQ(e.kind, Event::kError);
  EXPECT_EQ(e.close_code, kMessageTooBig);
  // Fragments that add up past the limit.
  FrameReader r(true, 10);
  std::string s = masked(kText, "123456", false) + masked(kContinuation, "789012");
  size_t pos = 0;
  EXPECT_EQ(r.next(s, pos).close_code, kMessageTooBig);
}

TEST(WebSocketFrame, CloseFramesCarryACodeAndAReason) {
  Event e = read_one(masked(kClose, close_payload(4000, "bye")));
  EXPECT_EQ(e.kind, Event::kClose);
  EXPECT_EQ(e.close_code, 4000);
  EXPECT_EQ(e.payload, "bye");
  EXPECT_EQ(read_one(masked(kClose, "")).close_code, kNoStatus);
  EXPECT_EQ(read_one(masked(kClose, "x")).kind, Event::kError);
  EXPECT_EQ(read_one(masked(kClose, close_payload(1005, ""))).kind, Event::kError);
  EXPECT_EQ(read_one(masked(kClose, close_payload(999, ""))).kind, Event::kError);
}

}  // namespace
}  // namespace dobj::internal::ws
