// A power cut, simulated: an LD_PRELOAD library that remembers what a
// process made durable.
//
// SIGKILL keeps the page cache, so a crash test passes even when nothing is
// ever synced. A power cut keeps only what was synced. This library runs
// inside the server under test (LD_PRELOAD, with DOBJ_POWERCUT_DATA naming its
// data folder and DOBJ_POWERCUT_SHADOW an empty folder elsewhere) and, after
// every sync call the process makes on a file of the data folder, copies what
// that call made durable into the shadow folder:
//
// - fsync/fdatasync of a file: the file's content, under its inode's key;
// - fsync of a folder: the folder's entries (name, kind, inode key);
// - syncfs/sync: every folder's entries and every file written since its last
//   copy.
//
// Every sync in the process is seen, whoever makes it: SQLite's own, the
// flusher's, a write_file_atomic. After the process is killed, the test
// rebuilds the data folder from the shadow (tests/support/power_cut.h): a file
// exists if its folder's synced entries name it, with the content its inode
// had at its last sync. Keyed by inode, as the disk is: a file renamed or
// linked keeps its synced content. Writes are watched (write, pwrite,
// truncate, …) only to know which files a syncfs must copy.
//
// The library changes nothing the process sees: every call is passed on
// first, and the copy happens only after a successful sync.
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "support/power_cut_format.h"

namespace {

using dobj::test::powercut::entries_path;
using dobj::test::powercut::inode_key;

struct Config {
  bool on = false;
  std::string data;    // realpath of the data folder
  std::string shadow;  // realpath of the shadow folder
  dev_t dev = 0;
};

Config& config() {
  static Config c;
  return c;
}

std::mutex& mu() {
  static std::mutex m;
  return m;
}

// Inodes written since their last copy: (device, inode).
std::set<std::pair<dev_t, ino_t>>& dirty() {
  static std::set<std::pair<dev_t, ino_t>> d;
  return d;
}

thread_local bool t_inside = false;  // our own I/O is not watched

template <typename F>
F next(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

bool copy_fd_to(int in, const std::string& to) {
  std::string tmp = to + ".tmp";
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) return false;
  char buf[1 << 16];
  off_t off = 0;
  bool ok = true;
  for (;;) {
    ssize_t n = ::pread(in, buf, sizeof buf, off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ok = false;
      break;
    }
    if (n == 0) break;
    if (::write(out, buf, static_cast<size_t>(n)) != n) {
      ok = false;
      break;
    }
    off += n;
  }
  ::close(out);
  return ok && ::rename(tmp.c_str(), to.c_str()) == 0;
}

bool under_data(const std::string& path) {
  const std::string& d = config().data;
  return path == d || (path.size() > d.size() && path.compare(0, d.size(), d) == 0 &&
                       path[d.size()] == '/');
}

std::string relative(const std::string& path) {
  const std::string& d = config().data;
  return path.size() > d.size() ? path.substr(d.size() + 1) : std::string();
}

void make_dirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') ::mkdir(path.substr(0, i).c_str(), 0700);
  }
}

// Copies the content of the open file fd (with mu() held).
void copy_file(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
  std::string key = inode_key(fd, "");
  if (key.empty()) return;
  // fd may be write-only: read through a descriptor of our own.
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  int in = ::open(link, O_RDONLY | O_CLOEXEC);
  if (in < 0) return;
  copy_fd_to(in, config().shadow + "/inodes/" + key);
  ::close(in);
  dirty().erase({st.st_dev, st.st_ino});
}

// Records the entries of the folder at path (with mu() held).
void copy_folder(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) return;
  std::string list;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string full = path + "/" + name;
    struct stat st;
    if (::lstat(full.c_str(), &st) != 0) continue;
    char kind = S_ISDIR(st.st_mode) ? 'd' : S_ISREG(st.st_mode) ? 'f' : 0;
    if (!kind) continue;
    list += kind;
    list += '\t';
    list += inode_key(-1, full);
    list += '\t';
    list += name;
    list += '\n';
  }
  ::closedir(d);
  std::string to = entries_path(config().shadow, relative(path));
  make_dirs(to.substr(0, to.rfind('/')));
  std::string tmp = to + ".tmp";
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) return;
  bool ok = ::write(out, list.data(), list.size()) == static_cast<ssize_t>(list.size());
  ::close(out);
  if (ok) ::rename(tmp.c_str(), to.c_str());
}

// Everything under the data folder (with mu() held): syncfs, sync, and the
// state at start.
void copy_all(const std::string& path) {
  copy_folder(path);
  DIR* d = ::opendir(path.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string full = path + "/" + name;
    struct stat st;
    if (::lstat(full.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      copy_all(full);
    } else if (S_ISREG(st.st_mode)) {
      std::string copy = config().shadow + "/inodes/" + inode_key(-1, full);
      struct stat had;
      bool stale = dirty().count({st.st_dev, st.st_ino}) ||
                   ::stat(copy.c_str(), &had) != 0 || had.st_size != st.st_size;
      if (!stale) continue;
      int fd = ::open(full.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      copy_file(fd);
      ::close(fd);
    }
  }
  ::closedir(d);
}

std::string fd_path(int fd) {
  char link[64], buf[4096];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = ::readlink(link, buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// After a successful fsync or fdatasync of fd.
void synced(int fd) {
  if (!config().on || t_inside) return;
  std::string path = fd_path(fd);
  if (!under_data(path)) return;
  std::lock_guard lock(mu());
  t_inside = true;
  struct stat st;
  if (::fstat(fd, &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      copy_folder(path);
    } else {
      copy_file(fd);
    }
  }
  t_inside = false;
}

void synced_all() {
  if (!config().on || t_inside) return;
  std::lock_guard lock(mu());
  t_inside = true;
  copy_all(config().data);
  t_inside = false;
}

void written(int fd) {
  if (!config().on || t_inside) return;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_dev != config().dev) return;
  std::lock_guard lock(mu());
  dirty().insert({st.st_dev, st.st_ino});
}

__attribute__((constructor)) void start() {
  const char* data = std::getenv("DOBJ_POWERCUT_DATA");
  const char* shadow = std::getenv("DOBJ_POWERCUT_SHADOW");
  if (!data || !shadow) return;
  char d[PATH_MAX], s[PATH_MAX];
  if (!::realpath(data, d) || !::realpath(shadow, s)) return;
  struct stat st;
  if (::stat(d, &st) != 0) return;
  Config& c = config();
  c.data = d;
  c.shadow = s;
  c.dev = st.st_dev;
  make_dirs(c.shadow + "/inodes");
  c.on = true;
  // What is in the data folder when the process starts is on disk.
  std::string root = entries_path(c.shadow, "");
  struct stat had;
  if (::stat(root.c_str(), &had) != 0) synced_all();
}

}  // namespace

extern "C" {

int fsync(int fd) {
  static auto real = next<int (*)(int)>("fsync");
  int rc = real(fd);
  if (rc == 0) synced(fd);
  return rc;
}

int fdatasync(int fd) {
  static auto real = next<int (*)(int)>("fdatasync");
  int rc = real(fd);
  if (rc == 0) synced(fd);
  return rc;
}

int syncfs(int fd) {
  static auto real = next<int (*)(int)>("syncfs");
  int rc = real(fd);
  if (rc == 0) synced_all();
  return rc;
}

void sync() {
  static auto real = next<void (*)()>("sync");
  real();
  synced_all();
}

ssize_t write(int fd, const void* buf, size_t n) {
  static auto real = next<ssize_t (*)(int, const void*, size_t)>("write");
  ssize_t rc = real(fd, buf, n);
  if (rc > 0) written(fd);
  return rc;
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  static auto real = next<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
  ssize_t rc = real(fd, buf, n, off);
  if (rc > 0) written(fd);
  return rc;
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) {
  static auto real = next<ssize_t (*)(int, const void*, size_t, off64_t)>("pwrite64");
  ssize_t rc = real(fd, buf, n, off);
  if (rc > 0) written(fd);
  return rc;
}

ssize_t writev(int fd, const iovec* iov, int n) {
  static auto real = next<ssize_t (*)(int, const iovec*, int)>("writev");
  ssize_t rc = real(fd, iov, n);
  if (rc > 0) written(fd);
  return rc;
}

ssize_t pwritev(int fd, const iovec* iov, int n, off_t off) {
  static auto real = next<ssize_t (*)(int, const iovec*, int, off_t)>("pwritev");
  ssize_t rc = real(fd, iov, n, off);
  if (rc > 0) written(fd);
  return rc;
}

int ftruncate(int fd, off_t size) {
  static auto real = next<int (*)(int, off_t)>("ftruncate");
  int rc = real(fd, size);
  if (rc == 0) written(fd);
  return rc;
}

int ftruncate64(int fd, off64_t size) {
  static auto real = next<int (*)(int, off64_t)>("ftruncate64");
  int rc = real(fd, size);
  if (rc == 0) written(fd);
  return rc;
}

int fallocate(int fd, int mode, off_t off, off_t len) {
  static auto real = next<int (*)(int, int, off_t, off_t)>("fallocate");
  int rc = real(fd, mode, off, len);
  if (rc == 0) written(fd);
  return rc;
}

int posix_fallocate(int fd, off_t off, off_t len) {
  static auto real = next<int (*)(int, off_t, off_t)>("posix_fallocate");
  int rc = real(fd, off, len);
  if (rc == 0) written(fd);
  return rc;
}

}  // extern "C"
