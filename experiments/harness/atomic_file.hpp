// experiments/harness/atomic_file.hpp — write a file under a temporary name,
// rename it into place when complete.
//
// The temporary sits in the target's directory (so rename is atomic on one
// file system) and is named `.<target name>.tmp-<pid>-<n>`. It is removed
// when the AtomicFile is destroyed without commit(), and also when the
// process is stopped by SIGINT, SIGTERM or SIGHUP (install_cleanup_handlers),
// so an interrupted run leaves neither a half-written file nor a damaged old
// one.
#pragma once

#include <filesystem>

namespace lowbit::harness {

class AtomicFile {
 public:
  // Creates the (empty) temporary now; throws UsageError when the target's
  // directory is missing or unwritable, or the target is a directory.
  explicit AtomicFile(std::filesystem::path target);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  const std::filesystem::path& target() const { return target_; }
  const std::filesystem::path& temp_path() const { return temp_; }

  // Rename the temporary onto the target (replacing it). Throws
  // std::runtime_error if the rename fails; the temporary is then removed.
  void commit();

 private:
  std::filesystem::path target_, temp_;
  int slot_ = -1;
  bool committed_ = false;
};

// Throws UsageError unless `target` could be written atomically now: its
// directory exists and accepts a new file, and it is not a directory. Call
// before an experiment runs so that a bad -o fails at once.
void check_writable(const std::filesystem::path& target);

// Remove live temporaries on SIGINT / SIGTERM / SIGHUP, then die of the
// signal as usual. Called by run_main; idempotent.
void install_cleanup_handlers();

}  // namespace lowbit::harness
