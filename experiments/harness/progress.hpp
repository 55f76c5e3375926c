// experiments/harness/progress.hpp — a progress bar on stderr.
//
//   Progress bar("quant_error", cells);       // total work units
//   ... bar.add(1) from any thread ...
//
// Drawn only when stderr is a terminal, `quiet` is false and the run has
// lasted more than a second; redrawn by a background thread every 200 ms
// (so add() is one relaxed atomic increment), with the rate and the ETA.
// The line is cleared when the Progress is destroyed.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

namespace lowbit::harness {

class Progress {
 public:
  Progress(std::string label, std::uint64_t total, bool quiet = false)
      : label_(std::move(label)), total_(total), start_(clock::now()) {
    if (!quiet && ::isatty(STDERR_FILENO)) thread_ = std::thread([this] { loop(); });
  }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
    if (drawn_) std::fputs("\r\033[K", stderr);  // clear the bar's line
  }

  void add(std::uint64_t n = 1) { done_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t done() const { return done_.load(std::memory_order_relaxed); }

  // "1m05s", "3h02m", "12s".
  static std::string format_duration(double seconds) {
    if (!(seconds >= 0) || seconds > 1e7) return "?";
    const auto s = static_cast<long>(seconds + 0.5);
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else if (s >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
    else std::snprintf(buf, sizeof buf, "%lds", s);
    return buf;
  }

 private:
  using clock = std::chrono::steady_clock;

  void loop() {
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stop_; })) {
      const double elapsed = std::chrono::duration<double>(clock::now() - start_).count();
      if (elapsed > 1.0) draw(elapsed);
    }
  }

  void draw(double elapsed) {
    const std::uint64_t done = this->done();
    const double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 0.0;
    const double rate = static_cast<double>(done) / elapsed;
    const std::string eta = rate > 0 && total_ >= done ? format_duration(static_cast<double>(total_ - done) / rate) : "?";
    constexpr int width = 30;
    const int filled = static_cast<int>(frac * width > width ? width : frac * width);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r\033[K%s [%s] %llu/%llu  %.3g/s  ETA %s", label_.c_str(), bar.c_str(),
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(total_), rate, eta.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }

  std::string label_;
  std::uint64_t total_;
  clock::time_point start_;
  std::atomic<std::uint64_t> done_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool drawn_ = false;
  std::thread thread_;
};

}  // namespace lowbit::harness
