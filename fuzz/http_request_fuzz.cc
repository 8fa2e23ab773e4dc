// HTTP/1.1 request framing as the front door configures it: Beast's parser
// with the server's head and body limits, fed through a read buffer bounded
// as the server bounds it (the head limit + 64 KiB), request after request
// on one connection. No input may grow the buffer or a body past its limit,
// and a Transfer-Encoding that does not end in chunked is caught before any
// body is read (the server answers 400).
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>

namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kHeadLimit = 16 * 1024;
  constexpr size_t kBodyLimit = 64 * 1024;  // smaller than the server's, to reach it
  constexpr size_t kBufferLimit = kHeadLimit + 64 * 1024;
  boost::beast::flat_buffer buffer(kBufferLimit);
  std::optional<http::request_parser<http::string_body>> parser;
  auto fresh = [&] {
    parser.emplace();
    parser->header_limit(kHeadLimit);
    parser->body_limit(kBodyLimit);
  };
  fresh();
  size_t piece = size > 0 ? 1 + data[0] % 200 : 1;
  for (size_t off = size > 0 ? 1 : 0; off < size;) {
    size_t room = buffer.max_size() - buffer.size();
    if (room == 0) return 0;  // the server answers 431 and closes
    size_t n = std::min({piece, size - off, room});
    auto dst = buffer.prepare(n);
    std::memcpy(dst.data(), data + off, n);
    buffer.commit(n);
    off += n;
    if (buffer.size() > kBufferLimit) std::abort();
    for (;;) {
      boost::beast::error_code ec;
      size_t used = parser->put(buffer.data(), ec);
      buffer.consume(used);
      if (ec == http::error::need_more) break;
      if (ec) return 0;  // 400 / 413 / 431 and the connection closes
      if (parser->is_header_done() && !parser->is_done()) {
        const auto& req = parser->get();
        if (req.count(http::field::transfer_encoding) && !parser->chunked()) return 0;  // 400
      }
      if (!parser->is_done()) {
        if (used == 0) break;
        continue;
      }
      if (parser->get().body().size() > kBodyLimit) std::abort();
      fresh();  // keep-alive: the next request
      if (used == 0 && buffer.size() == 0) break;
    }
  }
  return 0;
}
