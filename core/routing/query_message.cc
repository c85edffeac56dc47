#include "core/routing/query_message.h"

#include <cstddef>
#include <cstdint>
#include <utility>

#include "core/routing/query_text.h"

namespace ferry::routing::internal {

namespace {

using Kind = Value::Kind;

// The query's camelCase names for IoT Hub system properties, lower-cased,
// and their wire names.
constexpr std::pair<std::string_view, std::string_view> kSystemAliases[] = {
    {"contenttype", "content-type"},
    {"contentencoding", "content-encoding"},
    {"messageid", "message-id"},
    {"correlationid", "correlation-id"},
    {"userid", "user-id"},
    {"to", "to"},
    {"absoluteexpirytime", "absolute-expiry-time"},
    {"connectiondeviceid", "iothub-connection-device-id"},
    {"connectionmoduleid", "iothub-connection-module-id"},
    {"connectionauthmethod", "iothub-connection-auth-method"},
    {"connectiondevicegenerationid", "iothub-connection-auth-generation-id"},
    {"enqueuedtime", "iothub-enqueuedtime"},
    {"creationtimeutc", "iothub-creation-time-utc"},
    {"messagesource", "iothub-message-source"},
    {"interfacename", "iothub-interface-name"},
    {"dataschema", "dt-dataschema"},
    {"subject", "dt-subject"},
};

const std::string* ContentType(const QueryInput& in) {
  return in.content_type ? &*in.content_type
                         : FindIgnoringCase(in.system_properties, "content-type");
}
const std::string* ContentEncoding(const QueryInput& in) {
  return in.content_encoding ? &*in.content_encoding
                             : FindIgnoringCase(in.system_properties, "content-encoding");
}

enum class BodyEncoding { kNone, kUtf8, kUtf16, kUtf32 };

// The $body rule: content type application/json and a UTF encoding.
BodyEncoding JsonBodyEncoding(const QueryInput& in) {
  const std::string* type = ContentType(in);
  const std::string* encoding = ContentEncoding(in);
  if (type == nullptr || encoding == nullptr) return BodyEncoding::kNone;
  if (!IEquals(Trimmed(*type), "application/json")) return BodyEncoding::kNone;
  const std::string_view e = Trimmed(*encoding);
  if (IEquals(e, "utf-8")) return BodyEncoding::kUtf8;
  if (IEquals(e, "utf-16")) return BodyEncoding::kUtf16;
  if (IEquals(e, "utf-32")) return BodyEncoding::kUtf32;
  return BodyEncoding::kNone;
}

// Decodes UTF-16/32 code units from bytes: a byte-order mark decides the
// order, otherwise little-endian (what .NET's Encoding.Unicode/UTF32 write).
template <typename Char>
std::optional<std::basic_string<Char>> CodeUnits(std::string_view bytes) {
  constexpr std::size_t kWidth = sizeof(Char);
  if (bytes.size() % kWidth != 0) return std::nullopt;
  auto unit = [&](std::size_t at, bool big) {
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < kWidth; ++k) {
      const auto b = static_cast<unsigned char>(bytes[at + (big ? k : kWidth - 1 - k)]);
      v = (v << 8) | b;
    }
    return v;
  };
  bool big = false;
  std::size_t at = 0;
  if (!bytes.empty()) {
    if (unit(0, false) == 0xFEFF) {
      at = kWidth;
    } else if (unit(0, true) == 0xFEFF) {
      big = true;
      at = kWidth;
    }
  }
  std::basic_string<Char> out;
  out.reserve(bytes.size() / kWidth);
  for (; at < bytes.size(); at += kWidth) out += static_cast<Char>(unit(at, big));
  return out;
}

nlohmann::json ParseBody(const QueryInput& in) {
  nlohmann::json invalid(nlohmann::json::value_t::discarded);
  switch (JsonBodyEncoding(in)) {
    case BodyEncoding::kNone:
      return invalid;
    case BodyEncoding::kUtf8: {
      std::string_view body = in.body;
      if (body.substr(0, 3) == "\xEF\xBB\xBF") body.remove_prefix(3);
      return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    }
    case BodyEncoding::kUtf16: {
      const auto units = CodeUnits<char16_t>(in.body);
      if (!units) return invalid;
      return nlohmann::json::parse(*units, nullptr, /*allow_exceptions=*/false);
    }
    case BodyEncoding::kUtf32: {
      const auto units = CodeUnits<char32_t>(in.body);
      if (!units) return invalid;
      for (const char32_t c : *units) {
        if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return invalid;
      }
      return nlohmann::json::parse(*units, nullptr, /*allow_exceptions=*/false);
    }
  }
  return invalid;
}

Value FromJson(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value::Null();
    case nlohmann::json::value_t::boolean:
      return Value::Bool(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      return Value::Number(j.get<double>());
    case nlohmann::json::value_t::string:
      return Value::String(j.get<std::string>());
    case nlohmann::json::value_t::array:
      return {Kind::kArray, false, 0, {}, &j};
    case nlohmann::json::value_t::object:
      return {Kind::kObject, false, 0, {}, &j};
    case nlohmann::json::value_t::binary:
    case nlohmann::json::value_t::discarded:
      return Value::Undefined();
  }
  return Value::Undefined();
}

}  // namespace

const std::string* FindIgnoringCase(const std::map<std::string, std::string>& m,
                                    std::string_view name) {
  if (const auto it = m.find(std::string(name)); it != m.end()) return &it->second;
  for (const auto& [k, v] : m) {
    if (IEquals(k, name)) return &v;
  }
  return nullptr;
}

const std::string* FindSystemProperty(const QueryInput& in, std::string_view name) {
  const std::string lower = Lowered(name);
  if (lower == "contenttype" || lower == "content-type") {
    if (in.content_type) return &*in.content_type;
  }
  if (lower == "contentencoding" || lower == "content-encoding") {
    if (in.content_encoding) return &*in.content_encoding;
  }
  if (const std::string* v = FindIgnoringCase(in.system_properties, name)) return v;
  for (const auto& [alias, wire] : kSystemAliases) {
    if (alias == lower) return FindIgnoringCase(in.system_properties, wire);
  }
  return nullptr;
}

const nlohmann::json* MessageCache::Body() {
  if (!body_) body_ = ParseBody(input_);
  return body_->is_discarded() ? nullptr : &*body_;
}

const nlohmann::json* MessageCache::Twin() {
  if (!twin_) {
    twin_ = input_.twin ? nlohmann::json::parse(*input_.twin, nullptr, false)
                        : nlohmann::json(nlohmann::json::value_t::discarded);
  }
  return twin_->is_discarded() ? nullptr : &*twin_;
}

// Walks `path` from `root`. The root itself (an empty path, or one that
// starts with an index) is not addressable, as in IoT Hub.
Value Walk(const nlohmann::json* root, const std::vector<PathSegment>& path, bool ignore_case) {
  if (root == nullptr || path.empty() || path.front().is_index) return Value::Undefined();
  const nlohmann::json* j = root;
  for (const PathSegment& seg : path) {
    if (seg.is_index) {
      if (!j->is_array() || seg.index >= j->size()) return Value::Undefined();
      j = &(*j)[seg.index];
      continue;
    }
    if (!j->is_object()) return Value::Undefined();
    auto it = j->find(seg.name);
    if (it == j->end() && ignore_case) {
      for (it = j->begin(); it != j->end(); ++it) {
        if (IEquals(it.key(), seg.name)) break;
      }
    }
    if (it == j->end()) return Value::Undefined();
    j = &*it;
  }
  return FromJson(*j);
}

}  // namespace ferry::routing::internal
