// experiments/harness/cli.hpp — subcommands, option parsing, suggestions.
//
// Each driver (experiments/drivers/<name>.cpp) registers itself with a
// static object:
//
//   static const lowbit::harness::Registrar reg{"formats", "limits and values of number formats", run};
//
// `run` receives the arguments after the subcommand name and returns the
// exit status. It parses them with OptionParser, which supplies --help and
// --config FILE (Boost config-file syntax, `name = value` per line, same
// option names; the command line wins), and turns every Boost parse error
// into a one-line UsageError, with the closest valid option name when the
// option is unknown.
#pragma once

#include <boost/program_options.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "experiments/harness/errors.hpp"

namespace lowbit::harness {

using RunFn = int (*)(const std::vector<std::string>& args);

struct Subcommand {
  std::string name;
  std::string summary;  // one line, shown by `lowbit --help`
  RunFn run = nullptr;
};

// Registers a subcommand at static-initialisation time.
struct Registrar {
  Registrar(std::string name, std::string summary, RunFn run);
};

// All registered subcommands, sorted by name.
std::vector<Subcommand> subcommands();

// Edit distance counting insertions, deletions, substitutions and swaps of
// two adjacent characters (optimal string alignment / restricted Damerau).
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `name` by edit_distance, or "" when none is close
// enough to be a plausible typo: distance <= max(2, len/3), or `name` is a
// prefix of exactly one candidate. Ties go to the earlier candidate.
std::string closest_name(std::string_view name, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "" — to append to an error message.
std::string did_you_mean(std::string_view name, const std::vector<std::string>& candidates);

// The command line of this process, shell-quoted, as set by main(); stored
// in every results file.
void set_command_line(int argc, const char* const* argv);
const std::string& command_line();

// The options the last OptionParser::parse resolved (command line, then
// config file, then defaults) as `name = value` lines; stored with every
// results file (root attribute `resolved_config`) so a run can be repeated
// from its output with --config.
std::string describe_options(const boost::program_options::variables_map& vm);
void set_resolved_config(std::string text);
const std::string& resolved_config();

// The lowbit executable's entry point: dispatch, --help, --version, error
// handling (UsageError, InputError, lowbit::FormatError: exit 2).
int run_main(int argc, const char* const* argv);

// Option parsing for one subcommand.
class OptionParser {
 public:
  // `command`: e.g. "formats"; `usage`: the argument synopsis after
  // "lowbit <command>"; `about`: a short paragraph for --help.
  OptionParser(std::string command, std::string usage, std::string about);

  // Add options as with boost::program_options::options_description.
  boost::program_options::options_description_easy_init add();
  // Positional arguments: `name` takes up to max_count of them (-1: all).
  void positional(const char* name, int max_count);

  // Parse. Returns nullopt after printing help for --help (the caller
  // returns 0). Throws UsageError on any malformed command line or config
  // file; `notify` has been called (required options, defaults).
  std::optional<boost::program_options::variables_map> parse(const std::vector<std::string>& args);

  void print_help(std::ostream& os) const;

 private:
  std::string command_, usage_, about_;
  boost::program_options::options_description options_;
  boost::program_options::positional_options_description positional_;
  std::vector<std::string> long_names() const;
  [[noreturn]] void rethrow_as_usage(const boost::program_options::error& e, const std::string& source) const;
};

// Split "a,b, c" on commas into trimmed non-empty parts.
std::vector<std::string> split_list(std::string_view text);

}  // namespace lowbit::harness
