// The name registry: parsing, canonical names, errors with suggestions,
// bits per parameter (facts.md / QLoRA / OCP MX figures).
#include <gtest/gtest.h>

#include <set>

#include "lowbit/formats/registry.hpp"

using namespace lowbit;

TEST(Registry, BitsPerParameterFacts) {
  const std::size_t rows = 4096, cols = 4096;  // n a multiple of 64 · 256
  const double n = double(rows) * cols;
  // QLoRA: 4 + 32/64 = 4.5.
  EXPECT_DOUBLE_EQ(parse_quantizer("nf4@64").bits_per_parameter(rows, cols), 4.5);
  EXPECT_DOUBLE_EQ(parse_quantizer("fp4-bnb@64").bits_per_parameter(rows, cols), 4.5);
  // Double quantization: 8/64 + 32/(64·256) = 0.127 instead of 0.5; + the fp32 mean.
  const double dq = parse_quantizer("nf4@64+dq").bits_per_parameter(rows, cols);
  EXPECT_DOUBLE_EQ(dq, 4 + 8.0 / 64 + 32.0 / (64 * 256) + 32 / n);
  EXPECT_NEAR(dq, 4.127, 5e-4);
  EXPECT_NEAR(4.5 - dq, 0.373, 5e-4);
  // OCP MX: 4 + 8/32.
  EXPECT_DOUBLE_EQ(parse_quantizer("mxfp4").bits_per_parameter(rows, cols), 4.25);
  EXPECT_DOUBLE_EQ(parse_quantizer("mxfp6").bits_per_parameter(rows, cols), 6.25);
  EXPECT_DOUBLE_EQ(parse_quantizer("mxfp8").bits_per_parameter(rows, cols), 8.25);
  // NVFP4: 4 + 8/16 + one fp32 tensor scale.
  EXPECT_DOUBLE_EQ(parse_quantizer("nvfp4").bits_per_parameter(rows, cols), 4.5 + 32 / n);
  // int8 vector-wise for an m × n matrix: 8 + 32/n.
  EXPECT_DOUBLE_EQ(parse_quantizer("int8@row").bits_per_parameter(64, 1000), 8 + 32.0 / 1000);
  EXPECT_DOUBLE_EQ(parse_quantizer("int8@col").bits_per_parameter(64, 1000), 8 + 32.0 / 64);
  // Zero point: k bits per group besides the scale.
  EXPECT_DOUBLE_EQ(parse_quantizer("int8-zp@tensor").bits_per_parameter(10, 10), 8 + 40.0 / 100);
  // Unscaled elements: their width.
  EXPECT_DOUBLE_EQ(parse_quantizer("e4m3fn").bits_per_parameter(3, 5), 8);
  EXPECT_DOUBLE_EQ(parse_quantizer("bf16").bits_per_parameter(3, 5), 16);
  EXPECT_DOUBLE_EQ(parse_quantizer("e4m3fn@tensor").bits_per_parameter(4, 8), 8 + 1.0);
  // A partial final block still carries a whole scale: 100 elements in blocks of 64 → 2 scales.
  EXPECT_DOUBLE_EQ(parse_quantizer("int4@64").bits_per_parameter(1, 100), 4 + 64.0 / 100);
  EXPECT_DOUBLE_EQ(parse_quantizer("nf3@64").bits_per_parameter(64, 64), 3.5);
  EXPECT_DOUBLE_EQ(parse_quantizer("dyn8@256").bits_per_parameter(256, 256), 8.125);
}

TEST(Registry, CanonicalNamesAndAliases) {
  EXPECT_EQ(parse_quantizer("e2m1fn@32:e8m0").name(), "mxfp4");
  EXPECT_EQ(parse_quantizer("mxfp4").name(), "mxfp4");
  EXPECT_EQ(parse_quantizer("e4m3fn@32:e8m0").name(), "mxfp8");
  EXPECT_EQ(parse_quantizer("e2m3fn@32:e8m0").name(), "mxfp6");
  EXPECT_EQ(parse_quantizer("e2m1fn@16:e4m3fn").name(), "nvfp4");
  EXPECT_EQ(parse_quantizer("e3m2fn@32:e8m0").name(), "e3m2fn@32:e8m0");
  EXPECT_EQ(parse_quantizer("nf4@64:fp32+dq").name(), "nf4@64+dq");
  EXPECT_EQ(parse_quantizer("nf4").name(), "nf4@tensor");
  EXPECT_EQ(parse_quantizer("int8").name(), "int8@tensor");
  EXPECT_EQ(parse_quantizer("e4m3fn").name(), "e4m3fn");
  EXPECT_EQ(parse_quantizer("half").name(), "fp16");
  EXPECT_EQ(parse_quantizer("nf4@64~bnb").name(), "nf4@64~bnb");
  const Quantizer q = parse_quantizer("int4@128");
  EXPECT_EQ(q.element_name(), "int4");
  EXPECT_EQ(q.element_bits(), 4);
  EXPECT_EQ(q.block_size(), 128u);
  EXPECT_EQ(parse_quantizer("nf3@64").element_bits(), 3);
  EXPECT_EQ(parse_quantizer("dyn8@256").element_bits(), 8);
  EXPECT_EQ(parse_quantizer("e4m3fn@tensor").element_name(), "e4m3fn");
}

TEST(Registry, EveryListedNameParsesAndReadsBack) {
  std::set<std::string> seen;
  for (const auto& n : registry_names()) {
    SCOPED_TRACE(n);
    EXPECT_TRUE(seen.insert(n).second) << "duplicate";
    const Quantizer q = parse_quantizer(n);
    EXPECT_EQ(parse_quantizer(q.name()).name(), q.name());
    EXPECT_GT(q.bits_per_parameter(16, 64), 0);
  }
  for (const char* n : {"mxfp4", "nvfp4", "nf4@64+dq", "int8@row", "e4m3fn", "fp16"}) EXPECT_TRUE(seen.count(n)) << n;
}

TEST(Registry, ErrorsSayWhatWouldBeValid) {
  auto message = [](const char* name) {
    try {
      parse_quantizer(name);
    } catch (const FormatError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("nf5@64x").find("granularity"), std::string::npos);
  const std::string typo = message("nf44");
  EXPECT_NE(typo.find("did you mean"), std::string::npos) << typo;
  EXPECT_NE(message("mxpf4").find("mxfp4"), std::string::npos);
  EXPECT_NE(message("nf4@1").find("block size"), std::string::npos);
  EXPECT_NE(message("nf4@64:fp8").find("scale format"), std::string::npos);
  EXPECT_NE(message("nf4@64:e8m0+dq").find("+dq"), std::string::npos);
  EXPECT_NE(message("e4m3fn+dq").find("+dq"), std::string::npos);
  EXPECT_NE(message("int9").find("2 <= K <= 8"), std::string::npos);
  EXPECT_NE(message("nf9@64").find("2 <= k <= 8"), std::string::npos);
  EXPECT_NE(message("int8-zp@32:e8m0").find("zero-point"), std::string::npos);
  EXPECT_NE(message("e8m0fnu@32").find("unsigned"), std::string::npos);
  EXPECT_NE(message("table:/no/such/file@64").find("cannot open"), std::string::npos);
  EXPECT_NE(message("e4m3fn@32~bnb").find("~bnb"), std::string::npos);
  EXPECT_NE(message("").find("empty"), std::string::npos);
  EXPECT_THROW(parse_quantizer("e12m3"), std::invalid_argument);  // FormatError derives from it
}
