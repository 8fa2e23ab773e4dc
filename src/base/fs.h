// Small filesystem helpers with errors as values.
#pragma once

#include <string>

#include "dobj/status.h"

namespace dobj::internal {

// mkdir -p. With durable, each folder it creates has its entry synced in its
// parent before the next is made, so that the whole path survives power loss
// (a folder's own fsync does not make its entry in the parent durable).
Status make_dirs(const std::string& path, bool durable = false);
// fsync of a directory, so that entries created in it survive power loss.
Status sync_dir(const std::string& path);
// syncfs of the filesystem that holds a folder: everything written to any
// file on it (and every entry made) survives power loss.
Status sync_filesystem(const std::string& path);
// fsync of a file's content.
Status sync_file(const std::string& path);
bool file_exists(const std::string& path);
// Reads a whole file; kNotFound when it does not exist.
Result<std::string> read_file(const std::string& path);
// Writes a file atomically (temporary file, fsync, rename, fsync of the folder).
Status write_file_atomic(const std::string& path, const std::string& data, int mode);

}  // namespace dobj::internal
