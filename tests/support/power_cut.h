// The test side of the simulated power cut (see power_cut_preload.cc): run a
// server with the library preloaded, kill it, and rebuild its data folder as
// the disk would hold it had the power gone at that moment.
#pragma once

#include <random>
#include <string>
#include <utility>
#include <vector>

namespace dobj::test {

struct PowerCut {
  // The environment that preloads the library for data_dir, keeping its
  // record in shadow_dir (an empty folder).
  static std::vector<std::pair<std::string, std::string>> environment(const std::string& data_dir,
                                                                      const std::string& shadow_dir);

  enum class Mode {
    kSynced,  // exactly what was synced survives
    kTorn,    // and of what was not: a random subset of each file's changed
              // 4 KiB blocks, and a random prefix of its growth, torn at any byte
  };
  struct Stats {
    int files = 0;
    int folders = 0;
    int64_t bytes_dropped = 0;  // written but not synced, thrown away
    int64_t bytes_kept = 0;     // written but not synced, kept (kTorn)
  };
  // Rebuilds data_dir from shadow_dir (the process must be dead), and empties
  // shadow_dir for the next run, whose start takes the rebuilt folder as
  // synced.
  static Stats cut(const std::string& data_dir, const std::string& shadow_dir, Mode mode,
                   std::mt19937& rng);
};

}  // namespace dobj::test
