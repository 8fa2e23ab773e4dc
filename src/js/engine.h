// The process's V8: initialised once, shared by the JavaScript objects
// (src/js) and the reviewer (src/review).
#pragma once

namespace dobj::js {

// Initialises V8 and its platform on first call (thread-safe); later calls
// do nothing. DOBJ_V8_FLAGS, when set, passes V8 flags (docs/js.md).
void init_v8();

}  // namespace dobj::js
