// lowbit formats — the limits of number formats, and every value they hold.
//
//   lowbit formats                       all named minifloats
//   lowbit formats e4m3fn e5m2 --values  limits, then every code and value
//   lowbit formats --formats e2m1fn,e3m2fn -o formats.h5
//   lowbit formats --list                every known format name
//
// HDF5 output: table `formats` (one row per format, columns below) and,
// with --values, one table `values/<name>` per format with a row for every
// code 0 .. 2^bits-1: `code` and `value`, the value decoded exactly in
// binary64 — NaN codes read NaN, infinity codes ±inf, and -0 is -0.0, so
// nothing is dropped and nothing needs a separate flag.
#include <iostream>
#include <set>

#include "experiments/harness/cli.hpp"
#include "experiments/harness/format_lookup.hpp"
#include "experiments/harness/results.hpp"
#include "experiments/harness/text_table.hpp"
#include "lowbit/formats/minifloat.hpp"
#include "lowbit/formats/minifloat_names.hpp"

namespace lowbit::harness {
namespace {

constexpr int max_value_table_bits = 16;

Table formats_schema() {
  Table t("formats", "limits of each number format (lowbit formats)");
  using enum ColumnType;
  t.add_column("name", string, "", "format name as given")
      .add_column("bits", int64, "bit", "total bits per code (sign + exponent + mantissa)")
      .add_column("exp_bits", int64, "bit", "exponent bits E")
      .add_column("man_bits", int64, "bit", "stored mantissa bits M")
      .add_column("bias", int64, "1", "exponent bias: normal value = 2^(field - bias) * 1.mantissa")
      .add_column("policy", string, "", "special values: ieee (inf+NaN), fn (only all-ones NaN), fnuz (no -0, one NaN), finite (none), unsigned_scale")
      .add_column("max_finite", float64, "1", "largest finite value")
      .add_column("min_normal", float64, "1", "smallest positive normal value")
      .add_column("min_subnormal", float64, "1", "smallest positive value (the smallest normal when there are no subnormals)")
      .add_column("epsilon", float64, "1", "distance from 1 to the next larger value, 2^-M")
      .add_column("finite_values", uint64, "1", "number of distinct finite values (+0 and -0 count once)")
      .add_column("dynamic_range", float64, "binade", "log2(max_finite / min_subnormal)")
      .add_column("has_inf", boolean, "", "has +-infinity")
      .add_column("has_nan", boolean, "", "has a NaN code")
      .add_column("has_negative_zero", boolean, "", "has a -0 code");
  return t;
}

Table values_table(const std::string& name, const FormatSpec& s) {
  Table t("values/" + name, "every code of " + name + " and its value");
  t.add_column("code", ColumnType::uint64, "", "bit pattern, 0 .. 2^bits - 1")
      .add_column("value", ColumnType::float64, "1", "decoded value, exact; NaN codes are NaN, inf codes +-inf");
  for (std::uint32_t c = 0; c < s.code_count(); ++c) t.add_row({std::uint64_t{c}, decode<double>(s, c)});
  t.set_attribute("format", name);
  t.set_attribute("bits", std::int64_t{s.total_bits()});
  return t;
}

void print_values(std::ostream& os, const std::string& name, const FormatSpec& s) {
  os << "\n# " << name << ": " << s.code_count() << " codes (code value)\n";
  for (std::uint32_t c = 0; c < s.code_count(); ++c)
    os << hex_code(c, s.total_bits()) << " " << shortest(decode<double>(s, c)) << "\n";
}

int run(const std::vector<std::string>& args) {
  OptionParser parser("formats", "[NAME...] [options]",
                      "Print the limits of number formats (default: every named minifloat); with --values every\n"
                      "code and value. -o writes table 'formats' (and 'values/<name>') to HDF5.");
  namespace po = boost::program_options;
  parser.add()("names", po::value<std::vector<std::string>>()->multitoken(), "format names (positional)")(
      "formats", po::value<std::vector<std::string>>()->multitoken()->value_name("A,B,..."),
      "format names, comma-separated (with the positional names)")(
      "values", po::bool_switch(), "also list every code and its value (formats of at most 16 bits)")(
      "list", po::bool_switch(), "list every known format name and exit")(
      "output,o", po::value<std::string>()->value_name("FILE.h5"), "write the results to this HDF5 file")(
      "append", po::bool_switch(), "add the rows to the existing results file given by -o")(
      "quiet,q", po::bool_switch(), "print nothing on stdout");
  parser.positional("names", -1);
  const auto vm_opt = parser.parse(args);
  if (!vm_opt) return 0;
  const auto& vm = *vm_opt;
  const bool quiet = vm["quiet"].as<bool>();
  const bool with_values = vm["values"].as<bool>();

  if (vm["list"].as<bool>()) {
    for (const auto& f : known_formats()) std::cout << f.name << "\t" << f.kind << "\t" << f.description << "\n";
    return 0;
  }

  // Names, in order, without repeats; the default list skips formats too
  // wide for a value table when --values asks for one.
  std::vector<std::string> names;
  std::set<std::string> seen;
  auto take = [&](const std::string& n) {
    if (seen.insert(n).second) names.push_back(n);
  };
  if (vm.count("names"))
    for (const auto& n : vm["names"].as<std::vector<std::string>>()) take(n);
  if (vm.count("formats"))
    for (const auto& list : vm["formats"].as<std::vector<std::string>>())
      for (const auto& n : split_list(list)) take(n);
  const bool explicit_names = !names.empty();
  if (!explicit_names)
    for (const auto& n : named_minifloats)
      if (!with_values || lowbit::FormatSpec(n.spec).total_bits() <= max_value_table_bits) take(std::string(n.name));

  std::vector<FormatSpec> specs;
  for (const auto& n : names) {
    specs.push_back(minifloat_or_error(n));
    if (with_values && specs.back().total_bits() > max_value_table_bits)
      throw UsageError("formats: --values lists formats of at most " + std::to_string(max_value_table_bits) +
                       " bits; '" + n + "' has " + std::to_string(specs.back().total_bits()));
  }

  // Check the output before any work, so a bad path fails at once.
  const bool append = vm["append"].as<bool>();
  if (append && !vm.count("output")) throw UsageError("formats: --append needs -o FILE");
  std::optional<ResultsWriter> writer;
  Table table = formats_schema();
  if (vm.count("output")) {
    writer.emplace(vm["output"].as<std::string>(), "formats",
                   append ? ResultsWriter::Mode::append : ResultsWriter::Mode::create);
    writer->check_schema(table);
  }

  for (std::size_t i = 0; i < names.size(); ++i) {
    const FormatSpec& s = specs[i];
    table.add_row({names[i], std::int64_t{s.total_bits()}, std::int64_t{s.exp_bits}, std::int64_t{s.man_bits},
                   std::int64_t{s.bias}, std::string(special_name(s.special)), s.max_finite(), s.min_normal(),
                   s.min_subnormal(), s.epsilon(), std::uint64_t{s.finite_value_count()}, s.dynamic_range_binades(),
                   s.has_inf(), s.has_nan(), s.has_negative_zero()});
  }
  if (!quiet) {
    print_table(std::cout, table);
    if (with_values)
      for (std::size_t i = 0; i < names.size(); ++i) print_values(std::cout, names[i], specs[i]);
  }
  if (writer) {
    if (with_values)
      for (std::size_t i = 0; i < names.size(); ++i)
        writer->add(values_table(names[i], specs[i]), ResultsWriter::OnExisting::replace);
    writer->add(std::move(table));
    writer->commit();
  }
  return 0;
}

const Registrar registrar{"formats", "limits and values of number formats (table, --values, -o HDF5)", run};

}  // namespace
}  // namespace lowbit::harness
