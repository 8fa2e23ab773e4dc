// The check an imported database file passes before it replaces an object's:
// a SQLite file that opens read-only, passes quick_check, and whose runtime
// tables (_dobj_kv, _dobj_alarm), where present, are exactly as the runtime
// makes them, with no trigger, index or view on or naming them (such code
// would run inside the runtime's own statements after the import).
//
// Reads the file only; any thread. Fuzzed by fuzz/import_check_fuzz.cc.
#pragma once

#include <string>

#include "dobj/status.h"

namespace dobj::internal {

// kInvalidArgument with what is wrong, or ok.
Status check_importable_database(const std::string& path);

}  // namespace dobj::internal
