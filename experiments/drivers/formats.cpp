// lowbit formats — the limits of number formats, and every value they hold.
//
//   lowbit formats                       all named minifloats
//   lowbit formats e4m3fn e5m2 --values  limits, then every code and value
//   lowbit formats --formats e2m1fn,e3m2fn -o formats.h5
//   lowbit formats --list                every known format name
//
//   lowbit formats nf4@64+dq mxfp4 int8@row --shape 4096x11008
//
// HDF5 output: table `formats` (one row per minifloat, columns below) and,
// with --values, one table `values/<name>` per format with a row for every
// code 0 .. 2^bits-1: `code` and `value`, the value decoded exactly in
// binary64 — NaN codes read NaN, infinity codes ±inf, and -0 is -0.0, so
// nothing is dropped and nothing needs a separate flag. Codebooks, integers
// and scaled forms (registry names) go to table `quantizers`: element,
// granularity, scale format and the storage cost in bits per parameter,
// scales and constants included, for a rows x cols matrix (--shape).
#include <cstdio>
#include <iostream>
#include <set>

#include "experiments/harness/cli.hpp"
#include "experiments/harness/format_lookup.hpp"
#include "experiments/harness/results.hpp"
#include "experiments/harness/text_table.hpp"
#include "lowbit/formats/minifloat.hpp"
#include "lowbit/formats/minifloat_names.hpp"
#include "lowbit/formats/registry.hpp"

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

const char* granularity_name(Granularity g) {
  switch (g) {
    case Granularity::none: return "none";
    case Granularity::tensor: return "tensor";
    case Granularity::row: return "row";
    case Granularity::col: return "col";
    case Granularity::block: return "block";
  }
  return "?";
}
const char* scale_format_name(ScaleFormat f) {
  switch (f) {
    case ScaleFormat::fp32: return "fp32";
    case ScaleFormat::fp16: return "fp16";
    case ScaleFormat::bf16: return "bf16";
    case ScaleFormat::e8m0: return "e8m0";
    case ScaleFormat::e4m3fn: return "e4m3fn";
    case ScaleFormat::dq: return "dq";
  }
  return "?";
}

Table quantizers_schema() {
  Table t("quantizers", "codebooks, integers and scaled formats: storage cost (lowbit formats)");
  using enum ColumnType;
  t.add_column("name", string, "", "format name as given")
      .add_column("canonical", string, "", "the registry's canonical name")
      .add_column("element", string, "", "element format")
      .add_column("element_bits", int64, "bit", "bits per stored element code")
      .add_column("granularity", string, "", "scale granularity: none, tensor, row, col, block")
      .add_column("block", uint64, "1", "elements per scale (block granularity), else 0")
      .add_column("scale_format", string, "", "how the scales are stored (dq: double-quantized, QLoRA)")
      .add_column("rows", uint64, "1", "matrix rows the cost is computed for (--shape)")
      .add_column("cols", uint64, "1", "matrix columns the cost is computed for (--shape)")
      .add_column("bits_per_param", float64, "bit", "storage per parameter, scales and constants included")
      .add_column("element_max", float64, "1", "largest element value (what a scale maps the absmax to)");
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
      "shape", po::value<std::string>()->default_value("4096x4096")->value_name("RxC"),
      "matrix shape for the bits per parameter of scaled formats")(
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

  // Minifloats to the `formats` table, every other registry name to `quantizers`.
  std::vector<std::string> minifloat_names, quantizer_names;
  std::vector<FormatSpec> specs;
  std::vector<Quantizer> quantizers;
  for (const auto& n : names) {
    if (auto spec = find_minifloat(n)) {
      minifloat_names.push_back(n);
      specs.push_back(*spec);
      if (with_values && spec->total_bits() > max_value_table_bits)
        throw UsageError("formats: --values lists formats of at most " + std::to_string(max_value_table_bits) +
                         " bits; '" + n + "' has " + std::to_string(spec->total_bits()));
    } else {
      quantizer_names.push_back(n);
      quantizers.push_back(parse_quantizer(n));  // FormatError (exit 2) with suggestions
    }
  }
  const std::string shape = vm["shape"].as<std::string>();
  std::size_t rows = 0, cols = 0;
  if (std::sscanf(shape.c_str(), "%zux%zu", &rows, &cols) != 2 || rows == 0 || cols == 0 ||
      shape != std::to_string(rows) + "x" + std::to_string(cols))
    throw UsageError("formats: --shape '" + shape + "' must be ROWSxCOLS, e.g. 4096x11008");

  // Check the output before any work, so a bad path fails at once.
  const bool append = vm["append"].as<bool>();
  if (append && !vm.count("output")) throw UsageError("formats: --append needs -o FILE");
  std::optional<ResultsWriter> writer;
  Table table = formats_schema();
  Table qtable = quantizers_schema();
  if (vm.count("output")) {
    writer.emplace(vm["output"].as<std::string>(), "formats",
                   append ? ResultsWriter::Mode::append : ResultsWriter::Mode::create);
    writer->check_schema(table);
    writer->check_schema(qtable);
  }
  names = minifloat_names;

  for (std::size_t i = 0; i < quantizers.size(); ++i) {
    const Quantizer& q = quantizers[i];
    const bool blocked = q.granularity() == Granularity::block;
    qtable.add_row({quantizer_names[i], q.name(), q.element_name(), std::int64_t{q.element_bits()},
                    std::string(granularity_name(q.granularity())), std::uint64_t{blocked ? q.block_size() : 0},
                    std::string(q.granularity() == Granularity::none ? "none" : scale_format_name(q.scale_format())),
                    std::uint64_t{rows}, std::uint64_t{cols}, q.bits_per_parameter(rows, cols), q.element().max_value()});
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    const FormatSpec& s = specs[i];
    table.add_row({names[i], std::int64_t{s.total_bits()}, std::int64_t{s.exp_bits}, std::int64_t{s.man_bits},
                   std::int64_t{s.bias}, std::string(special_name(s.special)), s.max_finite(), s.min_normal(),
                   s.min_subnormal(), s.epsilon(), std::uint64_t{s.finite_value_count()}, s.dynamic_range_binades(),
                   s.has_inf(), s.has_nan(), s.has_negative_zero()});
  }
  if (!quiet) {
    if (table.rows()) print_table(std::cout, table);
    if (qtable.rows()) {
      if (table.rows()) std::cout << "\n";
      print_table(std::cout, qtable);
    }
    if (with_values)
      for (std::size_t i = 0; i < names.size(); ++i) print_values(std::cout, names[i], specs[i]);
  }
  if (writer) {
    if (with_values)
      for (std::size_t i = 0; i < names.size(); ++i)
        writer->add(values_table(names[i], specs[i]), ResultsWriter::OnExisting::replace);
    if (table.rows()) writer->add(std::move(table));
    if (qtable.rows()) writer->add(std::move(qtable));
    writer->commit();
  }
  return 0;
}

const Registrar registrar{"formats", "limits and values of number formats (table, --values, -o HDF5)", run};

}  // namespace
}  // namespace lowbit::harness
