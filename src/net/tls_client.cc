#include "net/tls_client.h"

namespace dobj::internal {

namespace ssl = boost::asio::ssl;

Status set_up_client_tls(ssl::context& context, const std::string& ca_file) {
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                      ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  if (ca_file.empty()) {
    context.set_default_verify_paths(ec);
  } else {
    context.load_verify_file(ca_file, ec);
  }
  if (ec) {
    return Status(Code::kUnavailable, "cannot load the trusted certificates" +
                                          (ca_file.empty() ? std::string() : " of " + ca_file) + ": " +
                                          ec.message());
  }
  context.set_verify_mode(ssl::verify_peer);
  return Status::ok();
}

std::string certificate_refusal(SSL* ssl) {
  long verify = SSL_get_verify_result(ssl);
  return verify == X509_V_OK ? std::string() : X509_verify_cert_error_string(verify);
}

}  // namespace dobj::internal
