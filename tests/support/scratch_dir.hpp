// A per-process scratch directory for tests that run the `lowbit` binary,
// removed when the test program exits.
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace lowbit::test {

inline std::filesystem::path scratch_dir(const std::string& tag) {
  namespace fs = std::filesystem;
  static const fs::path d = [&] {
    auto p = fs::temp_directory_path() / fmt::format("lowbit-test-{}-{}", tag, ::getpid());
    fs::create_directories(p);
    return p;
  }();
  static const struct Cleanup {
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } cleanup;
  return d;
}

}  // namespace lowbit::test
