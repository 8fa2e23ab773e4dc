#include "js/engine.h"

#include <libplatform/libplatform.h>
#include <v8.h>

#include <cstdlib>
#include <memory>
#include <mutex>

namespace dobj::js {

void init_v8() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Diagnostics: V8's own flags (e.g. --perf-basic-prof for perf's view of
    // JavaScript frames), as docs/js.md says.
    if (const char* flags = std::getenv("DOBJ_V8_FLAGS"); flags && *flags) {
      v8::V8::SetFlagsFromString(flags);
    }
    // Never destroyed: isolates on any thread may use it until exit.
    v8::Platform* platform = v8::platform::NewDefaultPlatform().release();
    v8::V8::InitializePlatform(platform);
    v8::V8::Initialize();
  });
}

}  // namespace dobj::js
