// lowbit convert — values to a format's codes and back.
//
//   echo 448 465 -6 0.3 | lowbit convert --format e4m3fn
//   lowbit convert -i w.npy --format e2m1fn --codes codes.npy -o deq.npy
//   lowbit convert -i g.npy --format e5m2 --rounding stochastic --seed 7 -o q.npy
//
// Input: a .npy array (-i) of float32, float64 (fp32 / fp64 encoder),
// float16 (widened exactly to float32) or bfloat16 bits (`--input-dtype
// bf16`, stored as <u2 or ml_dtypes' |V2; widened exactly), or
// whitespace-separated numbers on stdin (strtod syntax, hex floats, nan,
// inf; encoded from the double). Output: --codes (uint8 up to 8 bits,
// uint16 up to 16, uint32 beyond) and/or -o (float32 decoded values), same
// shape as the input; with neither, one `value code decoded` line per
// element on stdout. Stochastic rounding draws element i's 32 random bits
// from stochastic_bits(seed, i) (harness/random.hpp): reproducible and
// independent of threading.
#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>

#include "experiments/harness/atomic_file.hpp"
#include "experiments/harness/cli.hpp"
#include "experiments/harness/format_lookup.hpp"
#include "experiments/harness/npy.hpp"
#include "experiments/harness/random.hpp"
#include "experiments/harness/text_table.hpp"
#include "lowbit/formats/minifloat.hpp"
#include "lowbit/formats/minifloat_names.hpp"

namespace lowbit::harness {
namespace {

Rounding parse_rounding(const std::string& r) {
  if (r == "nearest" || r == "nearest-even") return Rounding::nearest_even;
  if (r == "nearest-away") return Rounding::nearest_away;
  if (r == "zero" || r == "toward-zero") return Rounding::toward_zero;
  if (r == "away" || r == "away-from-zero") return Rounding::away_from_zero;
  if (r == "stochastic") return Rounding::stochastic;
  throw UsageError("convert: unknown rounding '" + r + "'" +
                   did_you_mean(r, {"nearest", "nearest-away", "zero", "away", "stochastic"}) +
                   "; choose nearest, nearest-away, zero, away or stochastic");
}

// The input values, kept in the precision they came in.
struct Input {
  std::vector<float> f32;   // float32 / float16 / bfloat16 input
  std::vector<double> f64;  // float64 .npy or text
  std::vector<std::size_t> shape;
  bool text = false;
  std::size_t size() const { return f32.empty() ? f64.size() : f32.size(); }
};

Input read_text(std::istream& in) {
  Input input;
  input.text = true;
  std::string token;
  while (in >> token) {
    const char* s = token.c_str();
    if (*s == '+') ++s;  // strtod takes it, but "+-1" must not pass
    errno = 0;
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    if (end == s || *end != '\0' || (s != token.c_str() && (*s == '-' || *s == '+')))
      throw InputError("convert: stdin: '" + token + "' (value " + std::to_string(input.f64.size() + 1) +
                       ") is not a number");
    if (errno == ERANGE && std::isinf(v))
      throw InputError("convert: stdin: '" + token + "' is beyond the range of a double");
    input.f64.push_back(v);
  }
  input.shape = {input.f64.size()};
  return input;
}

Input read_array(const std::string& path, const std::string& input_dtype) {
  const NpyArray a = read_npy(path);
  Input input;
  input.shape = a.shape;
  const std::string& d = a.dtype;
  auto mismatch = [&] {
    throw UsageError("convert: --input-dtype " + input_dtype + " but '" + path + "' holds dtype '" + d + "'");
  };
  if (input_dtype == "bf16") {
    if (d != "<u2" && d != "|V2") mismatch();
    const std::size_t n = a.element_count();
    input.f32.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      std::uint16_t bits;
      std::memcpy(&bits, a.data.data() + 2 * i, 2);
      input.f32[i] = lowbit::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);  // exact
    }
    return input;
  }
  const std::string want = input_dtype == "f32" ? "<f4" : input_dtype == "f16" ? "<f2" : input_dtype == "f64" ? "<f8" : "";
  if (!want.empty() && d != want) mismatch();
  if (d == "<f4" || d == "<f2") input.f32 = a.as<float>();
  else if (d == "<f8") input.f64 = a.as<double>();
  else if (d == "<u2" || d == "|V2")
    throw UsageError("convert: '" + path + "' holds 16-bit raw data (" + d + "); if it is bfloat16, pass --input-dtype bf16");
  else
    throw InputError("convert: '" + path + "' holds dtype '" + d +
                     "'; convert reads float16, float32, float64 and bfloat16 (--input-dtype bf16)");
  return input;
}

int run(const std::vector<std::string>& args) {
  OptionParser parser("convert", "--format NAME [-i IN.npy] [--codes C.npy] [-o OUT.npy] [options]",
                      "Convert values to a format's codes and back. Reads a .npy (-i) or whitespace-separated\n"
                      "numbers on stdin; writes codes and/or decoded float32 values as .npy, or prints\n"
                      "`value code decoded` lines.");
  namespace po = boost::program_options;
  parser.add()("format,f", po::value<std::string>()->value_name("NAME"), "target format (e.g. e4m3fn, e2m1fn, e5m2)")(
      "input,i", po::value<std::string>()->value_name("IN.npy"), "input array; default: numbers on stdin")(
      "input-dtype", po::value<std::string>()->default_value("auto")->value_name("T"),
      "auto|f32|f16|f64|bf16 (bf16: the .npy holds bfloat16 bits as <u2 or |V2)")(
      "codes", po::value<std::string>()->value_name("C.npy"), "write the codes (uint8 / uint16 / uint32)")(
      "output,o", po::value<std::string>()->value_name("OUT.npy"), "write the decoded values (float32)")(
      "rounding", po::value<std::string>()->default_value("nearest")->value_name("R"),
      "nearest|nearest-away|zero|away|stochastic")(
      "seed", po::value<std::uint64_t>()->default_value(0)->value_name("N"), "seed of stochastic rounding")(
      "saturate", po::bool_switch(), "values beyond the range become +-max finite (default, except with --preset ml_dtypes)")(
      "no-saturate", po::bool_switch(), "values beyond the range become +-inf or NaN, per the format")(
      "flush-subnormals", po::bool_switch(), "results that would be subnormal become +-0")(
      "preset", po::value<std::string>()->default_value("lowbit")->value_name("P"),
      "lowbit|cuda|ml_dtypes: corner-case policies (NaN, inf, E8M0 edges) of that library")(
      "quiet,q", po::bool_switch(), "no notes on stderr");
  const auto vm_opt = parser.parse(args);
  if (!vm_opt) return 0;
  const auto& vm = *vm_opt;

  if (!vm.count("format")) throw UsageError("convert: --format NAME is required; see 'lowbit convert --help'");
  const std::string format = vm["format"].as<std::string>();
  const FormatSpec spec = minifloat_or_error(format);
  const bool sat = vm["saturate"].as<bool>(), nosat = vm["no-saturate"].as<bool>();
  if (sat && nosat) throw UsageError("convert: --saturate and --no-saturate contradict each other");

  const std::string preset = vm["preset"].as<std::string>();
  ConvertOptions opts;
  if (preset == "lowbit") opts = presets::lowbit;
  else if (preset == "cuda") opts = presets::cuda(!nosat);
  else if (preset == "ml_dtypes") opts = presets::ml_dtypes(spec.special == Special::unsigned_scale);
  else
    throw UsageError("convert: unknown preset '" + preset + "'" + did_you_mean(preset, {"lowbit", "cuda", "ml_dtypes"}));
  if (!vm["rounding"].defaulted()) opts.rounding = parse_rounding(vm["rounding"].as<std::string>());
  if (sat) opts.overflow = Overflow::saturate;
  if (nosat) opts.overflow = Overflow::special;
  if (vm["flush-subnormals"].as<bool>()) opts.flush_subnormals = true;
  const std::uint64_t seed = vm["seed"].as<std::uint64_t>();

  const std::string input_dtype = vm["input-dtype"].as<std::string>();
  if (input_dtype != "auto" && input_dtype != "f32" && input_dtype != "f16" && input_dtype != "f64" && input_dtype != "bf16")
    throw UsageError("convert: unknown --input-dtype '" + input_dtype + "'" +
                     did_you_mean(input_dtype, {"auto", "f32", "f16", "f64", "bf16"}));
  if (!vm.count("input") && input_dtype != "auto")
    throw UsageError("convert: --input-dtype applies to -i FILE.npy; stdin is read as text");

  // Outputs are checked before any work.
  const std::string codes_path = vm.count("codes") ? vm["codes"].as<std::string>() : "";
  const std::string out_path = vm.count("output") ? vm["output"].as<std::string>() : "";
  if (!codes_path.empty() && codes_path == out_path) throw UsageError("convert: --codes and -o name the same file");
  if (!codes_path.empty()) check_writable(codes_path);
  if (!out_path.empty()) check_writable(out_path);

  const Input input = vm.count("input") ? read_array(vm["input"].as<std::string>(), input_dtype) : read_text(std::cin);
  const std::size_t n = input.size();
  if (n == 0) throw InputError("convert: no input values");

  std::vector<std::uint32_t> codes(n);
  std::size_t nans = 0, infs = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t bits = opts.rounding == Rounding::stochastic ? stochastic_bits(seed, i) : 0u;
    const double x = input.f32.empty() ? input.f64[i] : static_cast<double>(input.f32[i]);
    nans += std::isnan(x);
    infs += std::isinf(x);
    codes[i] = input.f32.empty() ? encode(spec, input.f64[i], opts, bits) : encode(spec, input.f32[i], opts, bits);
  }
  if ((nans || infs) && !vm["quiet"].as<bool>())
    std::cerr << "lowbit convert: note: " << nans << " NaN and " << infs << " infinite input(s), converted per "
              << format << "'s policy (" << special_name(spec.special) << ")\n";

  if (codes_path.empty() && out_path.empty()) {
    for (std::size_t i = 0; i < n; ++i) {
      // The input as read: shortest decimal of the double, or of the float
      // for float32 input (0.3f prints 0.3, not 0.30000001192092896).
      const std::string value = input.f32.empty() || std::isnan(input.f32[i]) ? shortest(input.f32.empty() ? input.f64[i] : input.f32[i])
                                                                               : fmt::format("{}", input.f32[i]);
      std::cout << value << " " << hex_code(codes[i], spec.total_bits()) << " " << shortest(decode<double>(spec, codes[i])) << "\n";
    }
    return 0;
  }
  if (!codes_path.empty()) {
    const int bits = spec.total_bits();
    if (bits <= 8) {
      std::vector<std::uint8_t> c(codes.begin(), codes.end());
      write_npy(codes_path, "|u1", input.shape, c.data());
    } else if (bits <= 16) {
      std::vector<std::uint16_t> c(codes.begin(), codes.end());
      write_npy(codes_path, "<u2", input.shape, c.data());
    } else {
      write_npy(codes_path, "<u4", input.shape, codes.data());
    }
  }
  if (!out_path.empty()) {
    std::vector<float> decoded(n);
    for (std::size_t i = 0; i < n; ++i) decoded[i] = decode<float>(spec, codes[i]);
    write_npy(out_path, "<f4", input.shape, decoded.data());
  }
  return 0;
}

const Registrar registrar{"convert", "convert values to a format's codes and back (.npy or stdin)", run};

}  // namespace
}  // namespace lowbit::harness
