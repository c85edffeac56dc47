# The sources of ferry_domain, listed once: core/CMakeLists.txt builds the
# library from them and fuzz/CMakeLists.txt builds them with the fuzzer's
# instrumentation.
set(FERRY_DOMAIN_SOURCES
  auth/authorizer.cc
  auth/base64.cc
  auth/connection_string.cc
  auth/permission.cc
  auth/sas.cc
  c2d/lifecycle.cc
  c2d/send.cc
  d2c/landing_plan.cc
  d2c/partition.cc
  d2c/record.cc
  device_id.cc
  error.cc
  routing/query.cc
  routing/query_eval.cc
  routing/query_functions.cc
  routing/query_lexer.cc
  routing/query_message.cc
  routing/query_parser.cc
  routing/query_text.cc
  routing/route_set.cc
  throttle.cc
  time_text.cc
)
list(TRANSFORM FERRY_DOMAIN_SOURCES PREPEND ${CMAKE_CURRENT_LIST_DIR}/)
# What the domain may link: formatting, JSON, and OpenSSL's HMAC, SHA-256,
# base64 and random bytes. Never a database, Kafka, gRPC or metrics library.
set(FERRY_DOMAIN_DEPS fmt::fmt nlohmann_json::nlohmann_json OpenSSL::Crypto)
