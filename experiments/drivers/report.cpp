// `lowbit report RESULTS.h5… -o DIR/` — Markdown + PNG reports from results
// files. The work is done by scripts/lowbit_report.py (h5py, pandas,
// matplotlib); this driver finds that script and runs it with the same
// arguments, so `lowbit report` and the script are one command.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "experiments/harness/cli.hpp"

namespace {

std::filesystem::path report_script() {
  if (const char* env = std::getenv("LOWBIT_REPORT_SCRIPT")) return env;
  return std::filesystem::path(LOWBIT_SOURCE_DIR) / "scripts" / "lowbit_report.py";
}

int run(const std::vector<std::string>& args) {
  const auto script = report_script();
  if (!std::filesystem::exists(script))
    throw lowbit::harness::UsageError("report: cannot find " + script.string() +
                                      " (set LOWBIT_REPORT_SCRIPT to scripts/lowbit_report.py)");
  std::vector<std::string> argv_strings{"python3", script.string()};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::cout.flush();
  execvp("python3", argv.data());
  throw lowbit::harness::UsageError("report: cannot run python3 (needed for reports: h5py, pandas, matplotlib)");
}

const lowbit::harness::Registrar registrar{"report", "Markdown + PNG report from HDF5 results files", run};

}  // namespace
