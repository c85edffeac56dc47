#include "core/routing/query_lexer.h"

#include <charconv>
#include <cstdint>
#include <utility>

#include <fmt/format.h>

#include "core/routing/query_text.h"

namespace ferry::routing::internal {

namespace {

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IsNameChar(char c) {
  return IsNameStart(c) || IsDigit(c);
}
bool IsHexDigit(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

class Lexer {
 public:
  explicit Lexer(std::string_view text) : s_(text) {}

  std::vector<Token> Run() {
    std::vector<Token> out;
    for (;;) {
      while (i_ < s_.size() &&
             (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r' || s_[i_] == '\n')) {
        ++i_;
      }
      Token t;
      t.offset = i_;
      if (i_ >= s_.size()) {
        out.push_back(std::move(t));
        return out;
      }
      const char c = s_[i_];
      if (IsDigit(c) || (c == '.' && i_ + 1 < s_.size() && IsDigit(s_[i_ + 1]))) {
        LexNumber(t);
      } else if (c == '\'' || c == '"') {
        LexString(t);
      } else if (IsNameStart(c) || (c == '$' && i_ + 1 < s_.size() && IsNameChar(s_[i_ + 1]))) {
        LexName(t);
      } else {
        LexOperator(t);
      }
      t.length = i_ - t.offset;
      out.push_back(std::move(t));
    }
  }

 private:
  [[noreturn]] void Fail(std::size_t offset, std::string message) {
    throw Failure{offset, std::move(message)};
  }

  char Peek(std::size_t ahead = 0) const { return i_ + ahead < s_.size() ? s_[i_ + ahead] : '\0'; }

  void LexNumber(Token& t) {
    const std::size_t start = i_;
    if (Peek() == '0' && (Peek(1) == 'x' || Peek(1) == 'X')) {
      i_ += 2;
      const std::size_t digits = i_;
      while (IsHexDigit(Peek())) ++i_;
      if (i_ == digits) Fail(start, "hexadecimal literal needs digits after '0x'");
      if (i_ - digits > 16) Fail(start, "hexadecimal literal is larger than 64 bits");
      std::uint64_t v = 0;
      std::from_chars(s_.data() + digits, s_.data() + i_, v, 16);
      t.number = static_cast<double>(v);
    } else {
      while (IsDigit(Peek())) ++i_;
      if (Peek() == '.') {
        ++i_;
        while (IsDigit(Peek())) ++i_;
      }
      if (Peek() == 'e' || Peek() == 'E') {
        ++i_;
        if (Peek() == '+' || Peek() == '-') ++i_;
        if (!IsDigit(Peek())) Fail(start, "number needs digits in its exponent");
        while (IsDigit(Peek())) ++i_;
      }
      const auto [ptr, ec] = std::from_chars(s_.data() + start, s_.data() + i_, t.number);
      if (ec == std::errc::result_out_of_range) Fail(start, "number is out of range");
      if (ec != std::errc() || ptr != s_.data() + i_) Fail(start, "invalid number");
    }
    if (IsNameChar(Peek()) || Peek() == '.') {
      Fail(start, fmt::format("invalid number '{}'", s_.substr(start, i_ + 1 - start)));
    }
    t.kind = Tok::kNumber;
  }

  std::uint32_t Hex4(std::size_t escape_offset) {
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = Peek();
      if (!IsHexDigit(c)) Fail(escape_offset, "\\u escape needs four hexadecimal digits");
      v = v * 16 + static_cast<std::uint32_t>(IsDigit(c) ? c - '0' : AsciiLower(c) - 'a' + 10);
      ++i_;
    }
    return v;
  }

  void LexString(Token& t) {
    const std::size_t start = i_;
    const char quote = s_[i_++];
    for (;;) {
      if (i_ >= s_.size()) Fail(start, "unterminated string literal");
      const char c = s_[i_];
      if (c == quote) {
        ++i_;
        break;
      }
      if (c != '\\') {
        t.text += c;
        ++i_;
        continue;
      }
      const std::size_t escape = i_;
      ++i_;
      const char e = Peek();
      ++i_;
      switch (e) {
        case '\'':
          t.text += '\'';
          break;
        case '"':
          t.text += '"';
          break;
        case '\\':
          t.text += '\\';
          break;
        case '/':
          t.text += '/';
          break;
        case 'b':
          t.text += '\b';
          break;
        case 'f':
          t.text += '\f';
          break;
        case 'n':
          t.text += '\n';
          break;
        case 'r':
          t.text += '\r';
          break;
        case 't':
          t.text += '\t';
          break;
        case 'u': {
          std::uint32_t cp = Hex4(escape);
          if (cp >= 0xDC00 && cp <= 0xDFFF) Fail(escape, "unpaired UTF-16 surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (Peek() != '\\' || Peek(1) != 'u') {
              Fail(escape, "unpaired UTF-16 surrogate in \\u escape");
            }
            const std::size_t low_escape = i_;
            i_ += 2;
            const std::uint32_t low = Hex4(low_escape);
            if (low < 0xDC00 || low > 0xDFFF) {
              Fail(escape, "unpaired UTF-16 surrogate in \\u escape");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          AppendUtf8(t.text, cp);
          break;
        }
        case '\0':
          if (i_ > s_.size()) Fail(start, "unterminated string literal");
          [[fallthrough]];
        default:
          Fail(escape, fmt::format("invalid escape '\\{}' in string literal", e));
      }
    }
    t.kind = Tok::kString;
  }

  // One segment of a name: letters, digits, '_', non-ASCII, and '-' between
  // them (so `iothub-message-schema` is one name; `a - 1` subtracts).
  void LexSegment() {
    while (IsNameChar(Peek()) || (Peek() == '-' && IsNameChar(Peek(1)))) ++i_;
  }

  void LexName(Token& t) {
    const std::size_t start = i_;
    if (Peek() == '$') ++i_;
    LexSegment();
    t.text = std::string(s_.substr(start, i_ - start));
    for (;;) {
      if (Peek() == '.') {
        ++i_;
        const std::size_t seg = i_;
        if (!IsNameChar(Peek())) Fail(seg, "expected a property name after '.'");
        LexSegment();
        t.segments.push_back({false, std::string(s_.substr(seg, i_ - seg)), 0});
      } else if (Peek() == '[') {
        if (t.index_offset == 0) t.index_offset = i_;
        const std::size_t bracket = i_;
        ++i_;
        const std::size_t digits = i_;
        while (IsDigit(Peek())) ++i_;
        if (i_ == digits || Peek() != ']') {
          Fail(bracket, "expected a non-negative integer array index in '[...]'");
        }
        std::size_t index = 0;
        const auto [ptr, ec] = std::from_chars(s_.data() + digits, s_.data() + i_, index);
        if (ec != std::errc() || ptr != s_.data() + i_) Fail(bracket, "array index is too large");
        ++i_;
        t.segments.push_back({true, {}, index});
      } else {
        break;
      }
    }
    t.kind = Tok::kName;
  }

  void LexOperator(Token& t) {
    const char c = s_[i_];
    const char n = Peek(1);
    auto two = [&](Tok k) {
      t.kind = k;
      i_ += 2;
    };
    auto one = [&](Tok k) {
      t.kind = k;
      i_ += 1;
    };
    switch (c) {
      case '(':
        return one(Tok::kLParen);
      case ')':
        return one(Tok::kRParen);
      case ',':
        return one(Tok::kComma);
      case '+':
        return one(Tok::kPlus);
      case '-':
        return one(Tok::kMinus);
      case '*':
        return one(Tok::kStar);
      case '/':
        return one(Tok::kSlash);
      case '%':
        return one(Tok::kPercent);
      case '=':
        if (n == '=') Fail(i_, "unexpected '==': use '=' for equality");
        return one(Tok::kEq);
      case '!':
        if (n == '=') return two(Tok::kNe);
        Fail(i_, "unexpected '!': use NOT or '!='");
      case '<':
        if (n == '=') return two(Tok::kLe);
        if (n == '>') return two(Tok::kNe);
        return one(Tok::kLt);
      case '>':
        if (n == '=') return two(Tok::kGe);
        return one(Tok::kGt);
      default:
        break;
    }
    if (c == '$') Fail(i_, "expected a property name after '$'");
    if (static_cast<unsigned char>(c) < 0x20) Fail(i_, "unexpected control character");
    Fail(i_, fmt::format("unexpected character '{}'", c));
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

std::vector<Token> Lex(std::string_view condition) {
  return Lexer(condition).Run();
}

}  // namespace ferry::routing::internal
