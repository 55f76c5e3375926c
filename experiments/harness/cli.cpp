#include "experiments/harness/cli.hpp"
#include "lowbit/formats/registry.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <numeric>

#include "experiments/harness/atomic_file.hpp"
#include "lowbit/formats/minifloat_names.hpp"

namespace po = boost::program_options;

namespace lowbit::harness {

namespace {

// Function-local so that registrars in other translation units may run first.
std::vector<Subcommand>& registry() {
  static std::vector<Subcommand> r;
  return r;
}

std::string& stored_command_line() {
  static std::string s;
  return s;
}

std::string shell_quote(std::string_view arg) {
  const bool plain = !arg.empty() && std::all_of(arg.begin(), arg.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("-_./=:,@+%").find(c) != std::string_view::npos;
  });
  if (plain) return std::string(arg);
  std::string q = "'";
  for (char c : arg) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Error messages are one line, whatever a library put in them.
std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

void print_main_help(std::ostream& os) {
  os << "lowbit " LOWBIT_VERSION " — low-bit number formats: conversion, quantization error, memory, kernels\n\n"
        "usage: lowbit <command> [options]\n"
        "       lowbit <command> --help\n"
        "       lowbit --version\n\n"
        "commands:\n";
  const auto subs = subcommands();
  std::size_t width = 0;
  for (const auto& s : subs) width = std::max(width, s.name.size());
  for (const auto& s : subs) os << "  " << s.name << std::string(width + 2 - s.name.size(), ' ') << s.summary << "\n";
  os << "\nEvery command accepts --config FILE (lines `option = value`; the command line wins).\n";
}

}  // namespace

Registrar::Registrar(std::string name, std::string summary, RunFn run) {
  registry().push_back({std::move(name), std::move(summary), run});
}

std::vector<Subcommand> subcommands() {
  auto r = registry();
  std::sort(r.begin(), r.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return r;
}

std::size_t edit_distance(std::string_view a, std::string_view b) { return lowbit::detail::edit_distance(a, b); }

std::string closest_name(std::string_view name, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = static_cast<std::size_t>(-1);
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(name, c);
    if (d < best_d) best_d = d, best = c;
  }
  if (best.empty()) return "";
  if (best_d <= std::max<std::size_t>(2, name.size() / 3) && best_d < std::max(name.size(), best.size())) return best;
  // A unique prefix ("form" -> "formats") is a plausible abbreviation.
  std::string prefixed;
  int matches = 0;
  for (const auto& c : candidates)
    if (!name.empty() && c.starts_with(name)) ++matches, prefixed = c;
  return matches == 1 ? prefixed : "";
}

std::string did_you_mean(std::string_view name, const std::vector<std::string>& candidates) {
  const std::string c = closest_name(name, candidates);
  return c.empty() ? "" : " (did you mean '" + c + "'?)";
}

void set_command_line(int argc, const char* const* argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) {
    if (i) s += ' ';
    s += shell_quote(argv[i]);
  }
  stored_command_line() = s;
}

const std::string& command_line() { return stored_command_line(); }

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    std::string_view part = text.substr(0, comma);
    while (!part.empty() && std::isspace(static_cast<unsigned char>(part.front()))) part.remove_prefix(1);
    while (!part.empty() && std::isspace(static_cast<unsigned char>(part.back()))) part.remove_suffix(1);
    if (!part.empty()) out.emplace_back(part);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

// ---- OptionParser ---------------------------------------------------------------

OptionParser::OptionParser(std::string command, std::string usage, std::string about)
    : command_(std::move(command)), usage_(std::move(usage)), about_(std::move(about)), options_("options") {
  options_.add_options()("help,h", "show this help and exit")(
      "config", po::value<std::string>()->value_name("FILE"),
      "read options from FILE (`name = value` lines); the command line wins");
}

po::options_description_easy_init OptionParser::add() { return options_.add_options(); }

void OptionParser::positional(const char* name, int max_count) { positional_.add(name, max_count); }

void OptionParser::print_help(std::ostream& os) const {
  os << "usage: lowbit " << command_ << " " << usage_ << "\n\n" << about_ << "\n\n" << options_;
}

std::vector<std::string> OptionParser::long_names() const {
  std::vector<std::string> names;
  for (const auto& o : options_.options()) names.push_back(o->long_name());
  return names;
}

void OptionParser::rethrow_as_usage(const po::error& e, const std::string& source) const {
  std::string msg = one_line(e.what());
  if (const auto* u = dynamic_cast<const po::unknown_option*>(&e)) {
    std::string opt = u->get_option_name();
    const bool dashed = opt.starts_with("--");
    if (dashed) opt = opt.substr(2);
    else if (opt.starts_with("-")) opt = opt.substr(1);
    const std::string c = closest_name(opt, long_names());
    if (!c.empty()) msg += " (did you mean '" + std::string(source.empty() ? "--" : "") + c + "'?)";
  }
  throw UsageError(command_ + ": " + (source.empty() ? "" : source + ": ") + msg + "; see 'lowbit " + command_ +
                   " --help'");
}

std::optional<po::variables_map> OptionParser::parse(const std::vector<std::string>& args) {
  po::variables_map vm;
  try {
    // No prefix guessing: "--sat" must not silently mean "--saturate".
    const int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::store(po::command_line_parser(args).options(options_).positional(positional_).style(style).run(), vm);
  } catch (const po::error& e) {
    rethrow_as_usage(e, "");
  }
  if (vm.count("help")) {
    print_help(std::cout);
    return std::nullopt;
  }
  if (vm.count("config")) {
    const std::string path = vm["config"].as<std::string>();
    try {
      // Values already stored from the command line are kept (po::store never overwrites).
      po::store(po::parse_config_file<char>(path.c_str(), options_), vm);
    } catch (const po::reading_file&) {
      throw UsageError(command_ + ": cannot read config file '" + path + "'");
    } catch (const po::error& e) {
      rethrow_as_usage(e, "config file '" + path + "'");
    }
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    rethrow_as_usage(e, "");
  }
  set_resolved_config(describe_options(vm));
  return vm;
}

// Every option of the parsed command line and config file as `name = value`
// lines (the config-file syntax), defaults included; values Boost cannot
// print as text are skipped.
std::string describe_options(const po::variables_map& vm) {
  std::string out;
  for (const auto& [name, v] : vm) {
    if (name == "help" || name == "config") continue;
    const boost::any& a = v.value();
    auto line = [&](const std::string& value) { out += name + " = " + value + "\n"; };
    if (const auto* s = boost::any_cast<std::string>(&a)) line(*s);
    else if (const auto* l = boost::any_cast<std::vector<std::string>>(&a)) for (const auto& e : *l) line(e);
    else if (const auto* b = boost::any_cast<bool>(&a)) line(*b ? "true" : "false");
    else if (const auto* i = boost::any_cast<int>(&a)) line(std::to_string(*i));
    else if (const auto* u = boost::any_cast<std::uint64_t>(&a)) line(std::to_string(*u));
    else if (const auto* z = boost::any_cast<std::size_t>(&a)) line(std::to_string(*z));
    else if (const auto* d = boost::any_cast<double>(&a)) line(fmt::format("{}", *d));
    else if (const auto* f = boost::any_cast<float>(&a)) line(fmt::format("{}", *f));
  }
  return out;
}

namespace {
std::string g_resolved_config;
}
void set_resolved_config(std::string text) { g_resolved_config = std::move(text); }
const std::string& resolved_config() { return g_resolved_config; }

// ---- main -------------------------------------------------------------------------

int run_main(int argc, const char* const* argv) {
  set_command_line(argc, argv);
  install_cleanup_handlers();
  std::string sub = argc > 1 ? argv[1] : "";
  try {
    if (argc < 2) {
      print_main_help(std::cerr);
      return 2;
    }
    if (sub == "--help" || sub == "-h" || (sub == "help" && argc == 2)) {
      print_main_help(std::cout);
      return 0;
    }
    if (sub == "--version" || sub == "-V") {
      std::cout << "lowbit " LOWBIT_VERSION " (git " LOWBIT_GIT_COMMIT ")\n";
      return 0;
    }
    std::vector<std::string> args(argv + 2, argv + argc);
    if (sub == "help" && !args.empty()) {  // `lowbit help formats` == `lowbit formats --help`
      sub = args[0];
      args = {"--help"};
    }
    std::vector<std::string> names;
    for (const auto& s : subcommands()) names.push_back(s.name);
    if (sub.starts_with("-")) {
      const std::string opt = sub.substr(sub.starts_with("--") ? 2 : 1);
      throw UsageError("unknown option '" + sub + "'" + [&] {
        const std::string c = closest_name(opt, {"help", "version"});
        return c.empty() ? std::string() : " (did you mean '--" + c + "'?)";
      }() + "; see 'lowbit --help'");
    }
    for (const auto& s : subcommands())
      if (s.name == sub) return s.run(args);
    throw UsageError("unknown command '" + sub + "'" + did_you_mean(sub, names) + "; see 'lowbit --help'");
  } catch (const UsageError& e) {
    std::cerr << "lowbit: error: " << one_line(e.what()) << "\n";
    return 2;
  } catch (const InputError& e) {
    std::cerr << "lowbit: error: " << one_line(e.what()) << "\n";
    return 2;
  } catch (const lowbit::FormatError& e) {
    std::cerr << "lowbit: error: " << one_line(e.what()) << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "lowbit: internal error: " << one_line(e.what()) << "\n";
    return 1;
  }
}

}  // namespace lowbit::harness
