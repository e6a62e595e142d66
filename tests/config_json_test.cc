// nn/config.h: the JSON value type layers and saved models use, and its strict parser.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "nn/config.h"
#include "nn/config_reader.h"

namespace kiln::nn {
namespace {

std::string parse_error(std::string_view text) {
  try {
    parse_config_json(text, "test.json");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(ConfigJson, RoundTripsEveryKindExactly) {
  Config c = Config::map();
  c.set("null", nullptr).set("yes", true).set("no", false).set("int", int64_t{-9007199254740993});
  c.set("big", INT64_MAX).set("small", INT64_MIN);
  c.set("third", 1.f / 3).set("scale", 1.f / 255).set("tiny", 5e-324).set("neg_zero", -0.0).set("whole", 2.0);
  c.set("nan", std::nan("")).set("inf", HUGE_VAL).set("ninf", -HUGE_VAL);
  const char raw[] = "tab\t quote\" back\\ nl\n nul\0 ctl\x01 del\x7f \xc3\xa9 \xf0\x9f\x98\x80";
  c.set("text", std::string(raw, sizeof raw - 1));
  c.set("list", Config::list({1, "two", Config::list(), Config::map()}));
  c.set("pair", Config::pair({3, 5}));
  for (int indent : {-1, 0, 2}) {
    std::string text = c.to_json(indent);
    Config back = parse_config_json(text, "round trip");
    EXPECT_EQ(back, c) << text;
    EXPECT_EQ(back.to_json(indent), text);
  }
  // Keys keep their order; an integer stays an integer and a whole double stays a number.
  Config back = parse_config_json(c.to_json(), "x");
  EXPECT_EQ(back.keys().front(), "null");
  EXPECT_EQ(back.keys().back(), "pair");
  EXPECT_EQ(back.at("int").kind(), Config::Kind::integer);
  EXPECT_EQ(back.at("whole").kind(), Config::Kind::number);
  EXPECT_EQ(static_cast<float>(back.at("scale").as_number()), 1.f / 255);
  EXPECT_TRUE(std::signbit(back.at("neg_zero").as_number()));
  EXPECT_NE(c.to_json().find("\"whole\": 2.0"), std::string::npos);
  EXPECT_NE(c.to_json().find("NaN"), std::string::npos);
}

TEST(ConfigJson, ValueAccessIsChecked) {
  Config m = Config::map().set("a", 1).set("b", "x");
  EXPECT_EQ(m.at("a").as_int(), 1);
  EXPECT_EQ(m.at("a").as_number(), 1.0);  // an integer reads as a number
  EXPECT_THROW(m.at("b").as_int(), std::invalid_argument);
  EXPECT_THROW(m.at("missing"), std::invalid_argument);
  EXPECT_THROW(Config(1).at("a"), std::invalid_argument);
  EXPECT_THROW(Config::list()[0], std::invalid_argument);
  m.set("a", 2);  // replaces in place
  EXPECT_EQ(m.keys(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(m.at("a").as_int(), 2);
  EXPECT_THROW(Config(uint64_t{1} << 63), std::invalid_argument);
  EXPECT_THROW(Config(std::string("\xff")).to_json(), std::invalid_argument);  // not UTF-8
  EXPECT_NE(Config(1.0), Config(1));
}

TEST(ConfigJson, AcceptsStandardJson) {
  Config c = parse_config_json(" {\"a\" : [1, -0, 2.5e3, -1E-2, true, null, \"\\u00e9\\ud83d\\ude00\\/\"]}\n", "x");
  const Config& a = c.at("a");
  ASSERT_EQ(a.size(), 7u);
  EXPECT_EQ(a[0].as_int(), 1);
  EXPECT_EQ(a[1].as_int(), 0);
  EXPECT_EQ(a[2].as_number(), 2500.0);
  EXPECT_EQ(a[3].as_number(), -0.01);
  EXPECT_EQ(a[6].as_string(), "\xc3\xa9\xf0\x9f\x98\x80/");
  EXPECT_EQ(parse_config_json("-Infinity", "x").as_number(), -HUGE_VAL);
  EXPECT_EQ(parse_config_json("9223372036854775807", "x").as_int(), INT64_MAX);
  EXPECT_EQ(parse_config_json("-9223372036854775808", "x").as_int(), INT64_MIN);
}

TEST(ConfigJson, RejectsMalformedTextNamingSourceAndOffset) {
  struct Case {
    std::string text, message;
  };
  std::vector<Case> cases = {
      {"", "unexpected end of input"},
      {"{", "expected a key"},
      {"{\"a\" 1}", "':' after a key"},
      {"{\"a\":1,}", "expected a string key"},
      {"[1,]", "unexpected character ']'"},
      {"[1 2]", "',' or ']'"},
      {"{\"a\":1, \"a\":2}", "duplicate key 'a' at byte 8"},
      {"01", "leading zero"},
      {"1.", "no digits after '.'"},
      {"1e", "no digits in the exponent"},
      {"+1", "unexpected character '+'"},
      {"9223372036854775808", "out of the int64 range"},
      {"1e999", "out of the double range"},
      {"nan", "unexpected character 'n'"},
      {"\"abc", "unterminated string"},
      {"\"a\nb\"", "raw control character"},
      {"\"\\x\"", "unknown escape"},
      {"\"\\u12zz\"", "bad hex digit"},
      {"\"\\u12\"", "truncated \\u escape"},
      {"\"\\ud800\"", "high surrogate without its low half"},
      {"\"\\udc00\"", "lone low surrogate"},
      {"\"\xc3\"", "invalid UTF-8"},
      {"\"\xed\xa0\x80\"", "invalid UTF-8"},  // an encoded surrogate
      {"\"\xc0\xaf\"", "invalid UTF-8"},      // overlong
      {"1 2", "unexpected text after the value at byte 2"},
      {std::string("[1]\0", 4), "unexpected text after the value at byte 3"},
      {"tru", "unexpected character 't'"},
  };
  for (const Case& c : cases) {
    std::string msg = parse_error(c.text);
    EXPECT_NE(msg.find(c.message), std::string::npos) << "input: " << c.text << "\nmessage: " << msg;
    EXPECT_NE(msg.find("'test.json'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(" at byte "), std::string::npos) << msg;
  }
}

TEST(ConfigJson, NestingDepthIsBounded) {
  std::string ok = std::string(kMaxConfigDepth, '[') + std::string(kMaxConfigDepth, ']');
  EXPECT_NO_THROW(parse_config_json(ok, "x"));
  // Far deeper than the limit: an error, not a stack overflow.
  std::string deep(1 << 20, '[');
  EXPECT_NE(parse_error(deep).find("nesting deeper than"), std::string::npos);
  std::string deep_maps;
  for (int i = 0; i <= kMaxConfigDepth; ++i) deep_maps += "{\"a\":";
  EXPECT_NE(parse_error(deep_maps).find("nesting deeper than"), std::string::npos);
}

TEST(ConfigJson, LargeFlatInputsParseInLinearTime) {
  std::string text = "{";
  for (int i = 0; i < 50000; ++i) text += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  text += "}";
  Config c = parse_config_json(text, "x");
  EXPECT_EQ(c.size(), 50000u);
  EXPECT_EQ(c.keys()[49999], "k49999");
}

TEST(ConfigReader, ReadsStrictlyAndNamesTheOwner) {
  Config c = parse_config_json(R"({"units": 3, "rate": 0.5, "flag": true, "ks": [2, 3], "s": 4, "odd": 0.1, "big": 1e39})", "x");
  ConfigReader r(c, "Thing config");
  EXPECT_EQ(r.integer("units", 1, 10), 3);
  EXPECT_EQ(r.real("rate"), 0.5f);
  EXPECT_TRUE(r.boolean("flag", false));
  EXPECT_EQ(r.pair("ks", {1, 1}, 1, 9), (std::array<int64_t, 2>{2, 3}));
  EXPECT_EQ(r.pair("s", {1, 1}, 1, 9), (std::array<int64_t, 2>{4, 4}));
  EXPECT_EQ(r.integer("absent", 7, 0, 9), 7);
  EXPECT_EQ(r.real("odd"), 0.1f);  // rounds to the nearest float
  try {
    r.real("big");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("Thing config: 'big'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("float32 range"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(r.finish());

  ConfigReader r2(c, "Thing config");
  EXPECT_THROW(r2.integer("units", 5, 10), std::invalid_argument);  // out of range
  EXPECT_THROW(r2.integer("rate", 0, 10), std::invalid_argument);   // not an integer
  EXPECT_THROW(r2.string("flag"), std::invalid_argument);
  EXPECT_THROW(r2.pair("ks", {1, 1}, 3, 9), std::invalid_argument);
  EXPECT_THROW(r2.get("missing"), std::invalid_argument);
  try {
    r2.finish();
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown key"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ConfigReader(Config(1), "Thing config"), std::invalid_argument);
}

}  // namespace
}  // namespace kiln::nn
