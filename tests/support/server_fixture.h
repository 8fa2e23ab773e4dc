// ServerFixture: a real server process in a temporary data folder, with the
// HTTP helpers integration tests use on it. Mixed into a test fixture.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/server_process.h"
#include "testing/http_client.h"
#include "testing/temp_dir.h"

namespace dobj::test {

class ServerFixture {
 protected:
  // Starts the server (again, after a stop) on the fixture's data folder.
  void start_server(const ServerCommand& command, std::vector<std::string> args = {}) {
    server_ = std::make_unique<ServerProcess>(command, dir_.path(), std::move(args));
    ASSERT_TRUE(server_->start()) << server_->output();
  }
  int port() const { return server_->port(); }
  HttpResponse call(const std::string& method, const std::string& target,
                    const std::string& body = "") {
    return http(port(), method, target, body);
  }
  // The answer's body as JSON; a body that is not JSON fails the test.
  nlohmann::json json(const std::string& method, const std::string& target,
                      const std::string& body = "") {
    HttpResponse r = call(method, target, body);
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.status << " " << r.body;
    return j;
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

}  // namespace dobj::test
