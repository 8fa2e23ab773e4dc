// Reading the errors that API calls throw, for tests.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "dobj/status.h"

namespace dobj::test {

// The message of the dobj::Error that fn throws, checked to carry
// kInvalidArgument; "no error" when fn returns.
template <typename F>
std::string invalid_argument_message(F&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument) << e.what();
    return e.what();
  }
  return "no error";
}

}  // namespace dobj::test
