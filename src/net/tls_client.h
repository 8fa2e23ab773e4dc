// The TLS side of dobj's clients (outgoing fetch, the CLI): one set of
// settings, the server's name checked, and a refused certificate explained.
#pragma once

#include <string>

#include <boost/asio/ssl.hpp>
#include <boost/system/error_code.hpp>

#include "dobj/status.h"

namespace dobj::internal {

// TLS 1.2 or newer; the server's certificate is checked against this
// machine's CA store (OpenSSL's default paths, which $SSL_CERT_FILE
// overrides), or against the PEM file ca_file names when it is not empty.
Status set_up_client_tls(boost::asio::ssl::context& context, const std::string& ca_file);

// Before the handshake on `stream` (an ssl_stream): sends `host` as SNI and
// refuses a certificate that does not carry it.
template <typename Stream>
boost::system::error_code expect_server_name(Stream& stream, const std::string& host) {
  if (!SSL_set_tlsext_host_name(stream.native_handle(), host.c_str())) {
    return {static_cast<int>(::ERR_get_error()), boost::asio::error::get_ssl_category()};
  }
  stream.set_verify_callback(boost::asio::ssl::host_name_verification(host));
  return {};
}

// After a failed handshake: why the server's certificate was refused
// ("certificate has expired", ...), or empty when the failure was not that.
std::string certificate_refusal(SSL* ssl);

}  // namespace dobj::internal
