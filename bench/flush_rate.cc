// dobj-flush-rate DIR [SECONDS]: how many 4 KiB write + fdatasync pairs per
// second the disk under DIR sustains, one at a time. The ceiling for durable
// writes that are not grouped; bench/compare prints it as the machine's limit.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [SECONDS]\n", argv[0]);
    return 2;
  }
  double seconds = argc > 2 ? std::atof(argv[2]) : 2.0;
  std::string path = std::string(argv[1]) + "/flush-rate.tmp";
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) {
    std::perror("open");
    return 1;
  }
  char block[4096] = {};
  auto start = std::chrono::steady_clock::now();
  long n = 0;
  double elapsed = 0;
  while (elapsed < seconds) {
    if (pwrite(fd, block, sizeof block, (n % 64) * 4096) != sizeof block || fdatasync(fd) != 0) {
      std::perror("write");
      return 1;
    }
    ++n;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  close(fd);
  unlink(path.c_str());
  std::printf("%.0f\n", n / elapsed);
  return 0;
}
