#include "experiments/harness/atomic_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include "experiments/harness/errors.hpp"

namespace lowbit::harness {

namespace {

// Live temporaries, readable from a signal handler: fixed storage; a slot
// is claimed (1), its path written, then published (2).
struct Slot {
  std::atomic<int> state{0};  // 0 free, 1 being written, 2 live
  char path[4096];
};
std::array<Slot, 32> slots;

int claim_slot(const std::string& path) {
  if (path.size() >= sizeof(Slot::path)) return -1;
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    int expected = 0;
    if (slots[i].state.compare_exchange_strong(expected, 1)) {
      std::memcpy(slots[i].path, path.c_str(), path.size() + 1);
      slots[i].state.store(2);
      return i;
    }
  }
  return -1;  // many temporaries at once: still removed by the destructor
}

void release_slot(int i) {
  if (i >= 0) slots[i].state.store(0);
}

extern "C" void cleanup_and_die(int sig) {
  for (auto& s : slots)
    if (s.state.load() == 2) ::unlink(s.path);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

std::filesystem::path directory_of(const std::filesystem::path& target) {
  auto dir = target.parent_path();
  return dir.empty() ? std::filesystem::path(".") : dir;
}

std::atomic<unsigned> counter{0};

}  // namespace

AtomicFile::AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
  std::error_code ec;
  if (target_.empty()) throw UsageError("empty output path");
  if (std::filesystem::is_directory(target_, ec)) throw UsageError("output path '" + target_.string() + "' is a directory");
  const auto dir = directory_of(target_);
  if (!std::filesystem::is_directory(dir, ec))
    throw UsageError("cannot write '" + target_.string() + "': directory '" + dir.string() + "' does not exist");
  std::string name(1, '.');
  name += target_.filename().string();
  name += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  temp_ = dir / name;
  slot_ = claim_slot(temp_.string());
  const int fd = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    release_slot(slot_);
    throw UsageError("cannot write '" + target_.string() + "': " + std::strerror(err));
  }
  ::close(fd);
}

AtomicFile::~AtomicFile() {
  if (!committed_) ::unlink(temp_.c_str());
  release_slot(slot_);
}

void AtomicFile::commit() {
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    const int err = errno;
    throw std::runtime_error("cannot rename '" + temp_.string() + "' to '" + target_.string() + "': " +
                             std::strerror(err));
  }
  committed_ = true;
}

void check_writable(const std::filesystem::path& target) {
  AtomicFile probe(target);  // creating and removing the temporary is the test
}

void install_cleanup_handlers() {
  static std::atomic<bool> installed{false};
  if (installed.exchange(true)) return;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction sa {};
    sa.sa_handler = cleanup_and_die;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  }
}

}  // namespace lowbit::harness
