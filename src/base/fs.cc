#include "base/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dobj::internal {
namespace {
Status errno_status(const std::string& what, const std::string& path) {
  return Status(Code::kInternal, what + " " + path + ": " + std::strerror(errno));
}
std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Opens a folder and has `sync` (fsync, syncfs) flush it; `what` names it in
// the error.
Status sync_through_folder(const std::string& path, int (*sync)(int), const char* what) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status("open", path);
  int rc = sync(fd);
  close(fd);
  if (rc != 0) return errno_status(what, path);
  return Status::ok();
}

}  // namespace

Status make_dirs(const std::string& path, bool durable) {
  if (path.empty() || path == "/" || path == ".") return Status::ok();
  // The deepest folder first: it is usually the only one missing (a new
  // object's folder), and one mkdir then does it. Its parent only when
  // mkdir says the parent is missing.
  if (mkdir(path.c_str(), 0755) != 0) {
    if (errno == EEXIST) return Status::ok();
    if (errno != ENOENT) return errno_status("mkdir", path);
    if (Status st = make_dirs(parent_of(path), durable); !st) return st;
    if (mkdir(path.c_str(), 0755) != 0) {
      if (errno == EEXIST) return Status::ok();  // made by another thread meanwhile
      return errno_status("mkdir", path);
    }
  }
  if (durable) return sync_dir(parent_of(path));
  return Status::ok();
}

Status sync_dir(const std::string& path) { return sync_through_folder(path, fsync, "fsync"); }

Status sync_filesystem(const std::string& path) { return sync_through_folder(path, syncfs, "syncfs"); }

bool file_exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

Result<std::string> read_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status(Code::kNotFound, path + " does not exist");
    return errno_status("open", path);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      close(fd);
      return errno_status("read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

Status sync_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_status("open", path);
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  errno = err;
  return rc == 0 ? Status::ok() : errno_status("fsync", path);
}

Status write_file_atomic(const std::string& path, const std::string& data, int mode) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return errno_status("create", tmp);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      close(fd);
      return errno_status("write", tmp);
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    close(fd);
    return errno_status("fsync", tmp);
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) return errno_status("rename", tmp);
  return sync_dir(parent_of(path));
}

}  // namespace dobj::internal
