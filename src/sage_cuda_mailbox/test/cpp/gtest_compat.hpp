// GoogleTest when available; otherwise a tiny harness with the subset of its API these tests
// use (TEST, EXPECT_/ASSERT_ comparisons, EXPECT_THROW, GTEST_SKIP), so the tests build anywhere.
#pragma once

#if !defined(SAGE_MINI_GTEST)
#include <gtest/gtest.h>
#else

#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace mini_gtest
{
struct Case
{
  const char * suite;
  const char * name;
  std::function<void ()> fn;
};
inline std::vector<Case> & registry()
{
  static std::vector<Case> cases;
  return cases;
}
struct Registrar
{
  Registrar(const char * s, const char * n, std::function<void ()> f)
  {
    registry().push_back({s, n, std::move(f)});
  }
};
inline bool & failed()
{
  static bool f = false;
  return f;
}
inline bool & skipped()
{
  static bool s = false;
  return s;
}
struct Abort {};
inline void report(const char * file, int line, const std::string & what)
{
  std::fprintf(stderr, "%s:%d: Failure\n%s\n", file, line, what.c_str());
  failed() = true;
}
struct Message
{
  std::ostringstream s;
  template <class T>
  Message & operator<<(const T & v) {s << v; return *this;}
};
struct Sink
{
  bool fatal;
  const char * file;
  int line;
  std::string what;
  bool operator=(const Message & m) const
  {
    report(file, line, what + " " + m.s.str());
    if (fatal) {
      throw Abort{};
    }
    return false;
  }
};
struct SkipSink
{
  void operator=(const Message & m) const {std::printf("  skipped: %s\n", m.s.str().c_str());}
};
template <class T, class = void>
struct streamable : std::false_type {};
template <class T>
struct streamable<T, std::void_t<decltype(std::declval<std::ostream &>() << std::declval<T>())>>
  : std::true_type {};
template <class T>
void print(std::ostream & s, const T & v)
{
  if constexpr (std::is_enum<T>::value) {
    s << static_cast<long long>(v);
  } else if constexpr (std::is_pointer<T>::value) {
    s << static_cast<const void *>(v);
  } else if constexpr (streamable<const T &>::value) {
    s << v;
  } else {
    s << "<value>";
  }
}
template <class A, class B>
std::string describe(const char * ea, const char * eb, const A & a, const B & b, const char * op)
{
  std::ostringstream s;
  s << "Expected: " << ea << " " << op << " " << eb << "\n  values: ";
  print(s, a);
  s << " vs ";
  print(s, b);
  return s.str();
}
}  // namespace mini_gtest

#define TEST(suite, name) \
  static void suite##_##name##_body(); \
  static const mini_gtest::Registrar suite##_##name##_reg(#suite, #name, suite##_##name##_body); \
  static void suite##_##name##_body()

#define MINI_CMP(fatal, a, b, op) \
  if (const auto mini_a = (a); [&] {const auto mini_b = (b); return mini_a op mini_b;}()) {} \
  else mini_gtest::Sink{fatal, __FILE__, __LINE__, \
      mini_gtest::describe(#a, #b, mini_a, (b), #op)} = mini_gtest::Message()

#define EXPECT_EQ(a, b) MINI_CMP(false, a, b, ==)
#define EXPECT_NE(a, b) MINI_CMP(false, a, b, !=)
#define EXPECT_LT(a, b) MINI_CMP(false, a, b, <)
#define EXPECT_LE(a, b) MINI_CMP(false, a, b, <=)
#define EXPECT_GT(a, b) MINI_CMP(false, a, b, >)
#define EXPECT_GE(a, b) MINI_CMP(false, a, b, >=)
#define ASSERT_EQ(a, b) MINI_CMP(true, a, b, ==)
#define ASSERT_NE(a, b) MINI_CMP(true, a, b, !=)
#define ASSERT_LT(a, b) MINI_CMP(true, a, b, <)
#define ASSERT_LE(a, b) MINI_CMP(true, a, b, <=)
#define ASSERT_GT(a, b) MINI_CMP(true, a, b, >)
#define ASSERT_GE(a, b) MINI_CMP(true, a, b, >=)
#define EXPECT_TRUE(c) \
  if (c) {} else mini_gtest::Sink{false, __FILE__, __LINE__, "Expected true: " #c} = \
      mini_gtest::Message()
#define EXPECT_FALSE(c) \
  if (!(c)) {} else mini_gtest::Sink{false, __FILE__, __LINE__, "Expected false: " #c} = \
      mini_gtest::Message()
#define ASSERT_TRUE(c) \
  if (c) {} else mini_gtest::Sink{true, __FILE__, __LINE__, "Expected true: " #c} = \
      mini_gtest::Message()
#define ASSERT_FALSE(c) \
  if (!(c)) {} else mini_gtest::Sink{true, __FILE__, __LINE__, "Expected false: " #c} = \
      mini_gtest::Message()
#define EXPECT_THROW(stmt, type) \
  do { \
    bool mini_thrown = false; \
    try {stmt;} catch (const type &) {mini_thrown = true;} catch (...) {} \
    if (!mini_thrown) { \
      mini_gtest::report(__FILE__, __LINE__, "Expected " #stmt " to throw " #type); \
    } \
  } while (0)
#define EXPECT_NO_THROW(stmt) \
  do { \
    try {stmt;} catch (...) {mini_gtest::report(__FILE__, __LINE__, #stmt " threw");} \
  } while (0)
#define GTEST_SKIP() \
  return (void)(mini_gtest::skipped() = true), mini_gtest::SkipSink{} = mini_gtest::Message()
#define FAIL() mini_gtest::Sink{true, __FILE__, __LINE__, "Failed"} = mini_gtest::Message()

#if defined(SAGE_MINI_GTEST_MAIN)
inline int mini_gtest_main()
{
  int failures = 0;
  for (const auto & c : mini_gtest::registry()) {
    mini_gtest::failed() = false;
    mini_gtest::skipped() = false;
    std::printf("[ RUN      ] %s.%s\n", c.suite, c.name);
    try {
      c.fn();
    } catch (const mini_gtest::Abort &) {
    } catch (const std::exception & e) {
      mini_gtest::report(__FILE__, __LINE__, std::string("uncaught exception: ") + e.what());
    }
    if (mini_gtest::failed()) {
      ++failures;
    }
    std::printf("[ %s ] %s.%s\n", mini_gtest::failed() ? " FAILED " :
      (mini_gtest::skipped() ? " SKIPPED" : "      OK"), c.suite, c.name);
  }
  const int total = static_cast<int>(mini_gtest::registry().size());
  std::printf("%d passed, %d failed\n", total - failures, failures);
  return failures == 0 ? 0 : 1;
}

int main()
{
  return mini_gtest_main();
}
#endif  // SAGE_MINI_GTEST_MAIN

#endif
