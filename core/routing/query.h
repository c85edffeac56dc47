#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

// IoT Hub's message routing query language (docs/routing-query.md): a
// condition is parsed once into an immutable Query, then evaluated against
// many messages. Pure: no Kafka, PostgreSQL or gRPC types.

namespace ferry::routing {

// What a condition can see of one message.
struct QueryInput {
  // System properties under IoT Hub's wire names (`content-type`,
  // `message-id`, `iothub-connection-device-id`, `iothub-enqueuedtime`, ...),
  // as in d2c::Event. The query's camelCase names (`$contentType`,
  // `$connectionDeviceId`, ...) are mapped onto these.
  std::map<std::string, std::string> system_properties;
  // Application properties; queries match their names without regard to case.
  std::map<std::string, std::string> application_properties;
  // Raw body bytes, in `content_encoding`.
  std::string body;
  // When set, these win over system_properties["content-type"] and
  // ["content-encoding"], both for `$contentType` and for the $body rule.
  std::optional<std::string> content_type;
  std::optional<std::string> content_encoding;
  // The device (or module) twin as JSON text, for `$twin.` paths; unset means
  // every twin path is undefined.
  std::optional<std::string> twin;
};

// A condition that does not parse.
struct ParseError {
  std::size_t position = 0;  // 1-based, in Unicode characters of the condition
  std::string message;

  // "position 7: expected ')'".
  [[nodiscard]] std::string ToString() const;
};

// Result of evaluating a condition. IoT Hub routes only on kTrue; false,
// null, undefined and non-Boolean results all leave the message unrouted.
enum class Outcome {
  kTrue,
  kFalse,
  kUndefined,  // null, undefined, or not a Boolean
};

namespace internal {
struct Node;
class MessageCache;
}  // namespace internal

// One message as seen by conditions: refers to `input` (which must outlive
// it and not change) and parses its JSON body and twin at most once, on
// first use, however many queries are evaluated against it. Not
// thread-safe: use one per thread.
class Evaluation final {
 public:
  explicit Evaluation(const QueryInput& input);
  ~Evaluation();
  Evaluation(const Evaluation&) = delete;
  Evaluation& operator=(const Evaluation&) = delete;

 private:
  friend class Query;
  std::unique_ptr<internal::MessageCache> cache_;
};

// A parsed condition. Immutable and cheap to copy (the tree is shared);
// Matches and Evaluate are const and safe to call from several threads at
// once. Evaluation never fails: undefined values, nulls and type mismatches
// make the condition not match.
class Query final {
 public:
  // Parses `condition`. An empty (or blank) condition matches every message.
  // Never throws on bad input: a condition that does not parse yields a
  // ParseError with its 1-based position.
  [[nodiscard]] static std::variant<Query, ParseError> Parse(std::string_view condition);

  [[nodiscard]] bool Matches(const QueryInput& input) const;
  // Same, sharing the parsed body with other queries on the same message.
  [[nodiscard]] bool Matches(Evaluation& message) const;
  [[nodiscard]] Outcome Evaluate(Evaluation& message) const;

  // The condition as given to Parse.
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  Query(std::string text, std::shared_ptr<const internal::Node> root);

  std::string text_;
  std::shared_ptr<const internal::Node> root_;  // null: matches everything
};

}  // namespace ferry::routing
