// The shadow folder's layout, shared by the power-cut library
// (power_cut_preload.cc) and the test side that rebuilds a data folder from it
// (power_cut.h):
//
//   SHADOW/inodes/KEY          a file's content at its last sync
//   SHADOW/dirs/REL/@entries   a folder's entries at its last sync, a line
//                              each: KIND \t KEY \t NAME (KIND f or d)
//
// KEY names an inode: its number and, where the filesystem keeps it, its
// birth time (so a reused inode number is another key).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <string>

namespace dobj::test::powercut {

// The key of the open file fd, or of path when fd < 0; empty if neither can
// be read.
inline std::string inode_key(int fd, const std::string& path) {
  struct statx stx;
  int rc = fd >= 0 ? ::statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_BTIME, &stx)
                   : ::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW,
                             STATX_INO | STATX_BTIME, &stx);
  if (rc != 0) return std::string();
  std::string key = std::to_string(stx.stx_ino);
  if (stx.stx_mask & STATX_BTIME) {
    key += "-" + std::to_string(stx.stx_btime.tv_sec) + "." +
           std::to_string(stx.stx_btime.tv_nsec);
  }
  return key;
}

// Where the entries of the folder REL (relative to the data folder, "" for
// the data folder itself) are kept.
inline std::string entries_path(const std::string& shadow, const std::string& rel) {
  return shadow + "/dirs/" + (rel.empty() ? "" : rel + "/") + "@entries";
}

}  // namespace dobj::test::powercut
