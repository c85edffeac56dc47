#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

// The routing query language's text helpers: ASCII case, blanks, UTF-8.
// Internal to core/routing: part of query.cc's implementation, not of the
// interface in query.h. Namespace ferry::routing::internal.

namespace ferry::routing::internal {

inline char AsciiLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
inline char AsciiUpper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}
inline bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}
inline bool IsContinuationByte(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// `s` in ASCII lower case.
std::string Lowered(std::string_view s);
// Equal but for ASCII case.
bool IEquals(std::string_view a, std::string_view b);
// `s` without leading and trailing spaces and tabs.
std::string_view Trimmed(std::string_view s);

// Number of Unicode characters in `s` (UTF-8; a stray byte counts as one).
std::size_t CharCount(std::string_view s);
// Byte offset of character `chars` in `s` (s.size() past the end).
std::size_t ByteOffset(std::string_view s, std::size_t chars);
// Appends code point `cp` to `out` as UTF-8.
void AppendUtf8(std::string& out, std::uint32_t cp);

}  // namespace ferry::routing::internal
