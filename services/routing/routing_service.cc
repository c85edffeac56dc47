#include "services/routing/routing_service.h"

#include <set>

#include <fmt/format.h>
#include <google/protobuf/util/time_util.h>

#include "core/error.h"
#include "core/log.h"
#include "core/routing/query.h"
#include "services/rpc/proto_time.h"

namespace ferry::routing {
namespace {

constexpr std::string_view kService = "ferry.v1.Routing";

void Encode(const RouteRecord& r, v1::Route* out) {
  out->set_name(r.name);
  out->set_source(r.source == "DeviceLifecycleEvents" ? v1::ROUTE_SOURCE_DEVICE_LIFECYCLE_EVENTS
                                                      : v1::ROUTE_SOURCE_DEVICE_MESSAGES);
  out->set_condition(r.condition);
  out->set_endpoint(r.endpoint);
  out->set_enabled(r.enabled);
  *out->mutable_created_time() = rpc::ToProtoTime(r.created_at);
  *out->mutable_updated_time() = rpc::ToProtoTime(r.updated_at);
}

void Encode(const EndpointRecord& e, v1::Endpoint* out) {
  out->set_name(e.name);
  out->set_kind(e.kafka ? v1::ENDPOINT_KIND_KAFKA : v1::ENDPOINT_KIND_EVENT_STORE);
  out->set_kafka_topic(e.kafka_topic);
  *out->mutable_created_time() = rpc::ToProtoTime(e.created_at);
}

// Parses or refuses with the position of the error.
Query ParseCondition(const std::string& condition) {
  auto parsed = Query::Parse(condition);
  if (const auto* error = std::get_if<ParseError>(&parsed)) {
    throw Error(Reason::kArgumentInvalid, "condition does not parse: " + error->ToString());
  }
  return std::get<Query>(std::move(parsed));
}

QueryInput Sample(const v1::SampleMessage& s) {
  QueryInput in;
  const v1::D2cMessage& m = s.message();
  for (const auto& [k, v] : s.system_properties()) in.system_properties[k] = v;
  if (!m.message_id().empty()) in.system_properties["message-id"] = m.message_id();
  if (!m.correlation_id().empty()) in.system_properties["correlation-id"] = m.correlation_id();
  if (!m.content_type().empty()) in.system_properties["content-type"] = m.content_type();
  if (!m.content_encoding().empty())
    in.system_properties["content-encoding"] = m.content_encoding();
  for (const auto& [k, v] : m.properties()) in.application_properties[k] = v;
  in.body = m.body();
  return in;
}

v1::TestResult ToProto(Outcome o) {
  switch (o) {
    case Outcome::kTrue:
      return v1::TEST_RESULT_MATCHED;
    case Outcome::kFalse:
      return v1::TEST_RESULT_NOT_MATCHED;
    case Outcome::kUndefined:
      return v1::TEST_RESULT_UNDEFINED;
  }
  return v1::TEST_RESULT_UNDEFINED;
}

// IoT Hub reserves these endpoint names (compared without case here).
bool IsReservedEndpointName(std::string_view name) {
  static constexpr std::string_view kReserved[] = {"events", "filenotifications", "$default"};
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto r : kReserved) {
    if (lower == r) return true;
  }
  return false;
}

// Kafka's rule for topic names.
bool IsKafkaTopicName(std::string_view topic) {
  if (topic.empty() || topic.size() > 249 || topic == "." || topic == "..") return false;
  for (const char c : topic) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) && static_cast<unsigned char>(c) < 0x80) &&
        c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

}  // namespace

void ValidateRoutingName(const std::string& name, std::string_view what) {
  bool ok = !name.empty() && name.size() <= 64;
  for (const char c : name) {
    ok = ok && static_cast<unsigned char>(c) < 0x80 &&
         (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_');
  }
  if (!ok) {
    throw Error(
        Reason::kArgumentInvalid,
        fmt::format("{} name must be 1 to 64 ASCII letters, digits, '-', '.' or '_'", what));
  }
}

RouteRecord RoutingService::RouteFromProto(const v1::Route& in) const {
  ValidateRoutingName(in.name(), "route");
  ValidateRoutingName(in.endpoint(), "endpoint");
  (void)ParseCondition(in.condition());
  RouteRecord r;
  r.name = in.name();
  r.source = in.source() == v1::ROUTE_SOURCE_DEVICE_LIFECYCLE_EVENTS ? "DeviceLifecycleEvents"
                                                                     : "DeviceMessages";
  r.condition = in.condition();
  r.endpoint = in.endpoint();
  r.enabled = in.enabled();
  return r;
}

grpc::ServerUnaryReactor* RoutingService::CreateEndpoint(grpc::CallbackServerContext* ctx,
                                                         const v1::CreateEndpointRequest* request,
                                                         v1::Endpoint* response) {
  return runtime_.Unary(
      ctx, kService, "CreateEndpoint", request, response,
      [this](const rpc::Caller& caller, const v1::CreateEndpointRequest& req, v1::Endpoint& resp) {
        const v1::Endpoint& in = req.endpoint();
        ValidateRoutingName(in.name(), "endpoint");
        if (IsReservedEndpointName(in.name())) {
          throw Error(
              Reason::kArgumentInvalid,
              fmt::format("endpoint name '{}' is reserved (events, fileNotifications, $default)",
                          in.name()));
        }
        if (in.kind() != v1::ENDPOINT_KIND_KAFKA) {
          throw Error(Reason::kArgumentInvalid,
                      "only KAFKA endpoints can be created; 'events' is built in");
        }
        if (!IsKafkaTopicName(in.kafka_topic())) {
          throw Error(Reason::kArgumentInvalid,
                      "a Kafka endpoint needs a topic name: 1 to 249 ASCII letters, digits, '.', "
                      "'_' or '-'");
        }
        if (in.kafka_topic() == d2c_topic_) {
          throw Error(Reason::kArgumentInvalid, "a Kafka endpoint cannot be the D2C source topic");
        }
        Encode(store_.CreateEndpoint({in.name(), true, in.kafka_topic(), {}}, clock_.Now()), &resp);
        log::Get("routing")->info("endpoint created endpoint=\"{}\" topic=\"{}\" by=\"{}\"",
                                  in.name(), in.kafka_topic(), caller.principal);
      });
}

grpc::ServerUnaryReactor* RoutingService::ListEndpoints(grpc::CallbackServerContext* ctx,
                                                        const v1::ListEndpointsRequest* request,
                                                        v1::ListEndpointsResponse* response) {
  return runtime_.Unary(
      ctx, kService, "ListEndpoints", request, response,
      [this](const rpc::Caller&, const v1::ListEndpointsRequest&, v1::ListEndpointsResponse& resp) {
        for (const auto& e : store_.ListEndpoints()) Encode(e, resp.add_endpoints());
      });
}

grpc::ServerUnaryReactor* RoutingService::DeleteEndpoint(grpc::CallbackServerContext* ctx,
                                                         const v1::DeleteEndpointRequest* request,
                                                         v1::DeleteEndpointResponse* response) {
  return runtime_.Unary(ctx, kService, "DeleteEndpoint", request, response,
                        [this](const rpc::Caller&, const v1::DeleteEndpointRequest& req,
                               v1::DeleteEndpointResponse&) {
                          ValidateRoutingName(req.name(), "endpoint");
                          store_.DeleteEndpoint(req.name());
                        });
}

grpc::ServerUnaryReactor* RoutingService::CreateRoute(grpc::CallbackServerContext* ctx,
                                                      const v1::CreateRouteRequest* request,
                                                      v1::Route* response) {
  return runtime_.Unary(
      ctx, kService, "CreateRoute", request, response,
      [this](const rpc::Caller& caller, const v1::CreateRouteRequest& req, v1::Route& resp) {
        const RouteRecord r = store_.CreateRoute(RouteFromProto(req.route()), clock_.Now());
        Encode(r, &resp);
        log::Get("routing")->info("route created route=\"{}\" endpoint=\"{}\" by=\"{}\"", r.name,
                                  r.endpoint, caller.principal);
      });
}

grpc::ServerUnaryReactor* RoutingService::UpdateRoute(grpc::CallbackServerContext* ctx,
                                                      const v1::UpdateRouteRequest* request,
                                                      v1::Route* response) {
  return runtime_.Unary(
      ctx, kService, "UpdateRoute", request, response,
      [this](const rpc::Caller&, const v1::UpdateRouteRequest& req, v1::Route& resp) {
        Encode(store_.UpdateRoute(RouteFromProto(req.route()), clock_.Now()), &resp);
      });
}

grpc::ServerUnaryReactor* RoutingService::GetRoute(grpc::CallbackServerContext* ctx,
                                                   const v1::GetRouteRequest* request,
                                                   v1::Route* response) {
  return runtime_.Unary(
      ctx, kService, "GetRoute", request, response,
      [this](const rpc::Caller&, const v1::GetRouteRequest& req, v1::Route& resp) {
        ValidateRoutingName(req.name(), "route");
        Encode(store_.GetRoute(req.name()), &resp);
      });
}

grpc::ServerUnaryReactor* RoutingService::ListRoutes(grpc::CallbackServerContext* ctx,
                                                     const v1::ListRoutesRequest* request,
                                                     v1::ListRoutesResponse* response) {
  return runtime_.Unary(
      ctx, kService, "ListRoutes", request, response,
      [this](const rpc::Caller&, const v1::ListRoutesRequest&, v1::ListRoutesResponse& resp) {
        for (const auto& r : store_.ListRoutes()) Encode(r, resp.add_routes());
      });
}

grpc::ServerUnaryReactor* RoutingService::DeleteRoute(grpc::CallbackServerContext* ctx,
                                                      const v1::DeleteRouteRequest* request,
                                                      v1::DeleteRouteResponse* response) {
  return runtime_.Unary(
      ctx, kService, "DeleteRoute", request, response,
      [this](const rpc::Caller&, const v1::DeleteRouteRequest& req, v1::DeleteRouteResponse&) {
        ValidateRoutingName(req.name(), "route");
        store_.DeleteRoute(req.name());
      });
}

grpc::ServerUnaryReactor* RoutingService::GetSettings(grpc::CallbackServerContext* ctx,
                                                      const v1::GetRoutingSettingsRequest* request,
                                                      v1::RoutingSettings* response) {
  return runtime_.Unary(
      ctx, kService, "GetSettings", request, response,
      [this](const rpc::Caller&, const v1::GetRoutingSettingsRequest&, v1::RoutingSettings& resp) {
        const RoutingSettings s = store_.GetSettings();
        resp.set_fallback_enabled(s.fallback_enabled);
        resp.set_version(s.version);
      });
}

grpc::ServerUnaryReactor* RoutingService::SetFallback(grpc::CallbackServerContext* ctx,
                                                      const v1::SetFallbackRequest* request,
                                                      v1::RoutingSettings* response) {
  return runtime_.Unary(
      ctx, kService, "SetFallback", request, response,
      [this](const rpc::Caller&, const v1::SetFallbackRequest& req, v1::RoutingSettings& resp) {
        const RoutingSettings s = store_.SetFallback(req.enabled());
        resp.set_fallback_enabled(s.fallback_enabled);
        resp.set_version(s.version);
      });
}

grpc::ServerUnaryReactor* RoutingService::TestRoute(grpc::CallbackServerContext* ctx,
                                                    const v1::TestRouteRequest* request,
                                                    v1::TestRouteResponse* response) {
  return runtime_.Unary(
      ctx, kService, "TestRoute", request, response,
      [this](const rpc::Caller&, const v1::TestRouteRequest& req, v1::TestRouteResponse& resp) {
        if (req.condition().empty() == req.route().empty()) {
          throw Error(Reason::kArgumentInvalid, "give either a condition or a route name");
        }
        std::string condition = req.condition();
        if (!req.route().empty()) {
          ValidateRoutingName(req.route(), "route");
          condition = store_.GetRoute(req.route()).condition;
        }
        const Query query = ParseCondition(condition);
        const QueryInput input = Sample(req.sample());
        Evaluation evaluation(input);
        resp.set_result(ToProto(query.Evaluate(evaluation)));
      });
}

grpc::ServerUnaryReactor* RoutingService::TestAllRoutes(grpc::CallbackServerContext* ctx,
                                                        const v1::TestAllRoutesRequest* request,
                                                        v1::TestAllRoutesResponse* response) {
  return runtime_.Unary(ctx, kService, "TestAllRoutes", request, response,
                        [this](const rpc::Caller&, const v1::TestAllRoutesRequest& req,
                               v1::TestAllRoutesResponse& resp) {
                          const QueryInput input = Sample(req.sample());
                          Evaluation evaluation(input);
                          std::set<std::string> endpoints;
                          for (const RouteRecord& r : store_.ListRoutes()) {
                            if (!r.enabled || r.source != "DeviceMessages") continue;
                            auto parsed = Query::Parse(r.condition);
                            if (!std::holds_alternative<Query>(parsed))
                              continue;  // refused at creation; never stored
                            if (std::get<Query>(parsed).Matches(evaluation)) {
                              resp.add_matched_routes(r.name);
                              endpoints.insert(r.endpoint);
                            }
                          }
                          const bool fallback = resp.matched_routes_size() == 0 &&
                                                store_.GetSettings().fallback_enabled;
                          if (fallback) endpoints.insert(kBuiltInEndpoint);
                          resp.set_fallback_applies(fallback);
                          for (const auto& e : endpoints) resp.add_endpoints(e);
                        });
}

grpc::ServerUnaryReactor* RoutingService::SetEnrichment(grpc::CallbackServerContext* ctx,
                                                        const v1::SetEnrichmentRequest* request,
                                                        v1::Enrichment* response) {
  return runtime_.Unary(
      ctx, kService, "SetEnrichment", request, response,
      [this](const rpc::Caller& caller, const v1::SetEnrichmentRequest& req, v1::Enrichment& resp) {
        const v1::Enrichment& in = req.enrichment();
        ValidateRoutingName(in.key(), "enrichment key");
        if (in.value().empty() || in.value().size() > 1024) {
          throw Error(Reason::kArgumentInvalid, "an enrichment value must be 1 to 1024 characters");
        }
        if (in.endpoints().empty())
          throw Error(Reason::kArgumentInvalid, "an enrichment needs at least one endpoint");
        EnrichmentRecord e{in.key(), in.value(), {}};
        for (const auto& name : in.endpoints()) {
          ValidateRoutingName(name, "endpoint");
          e.endpoints.push_back(name);
        }
        store_.SetEnrichment(e, clock_.Now());
        resp = in;
        log::Get("routing")->info("enrichment set key=\"{}\" value=\"{}\" by=\"{}\"", in.key(),
                                  in.value(), caller.principal);
      });
}

grpc::ServerUnaryReactor* RoutingService::ListEnrichments(grpc::CallbackServerContext* ctx,
                                                          const v1::ListEnrichmentsRequest* request,
                                                          v1::ListEnrichmentsResponse* response) {
  return runtime_.Unary(ctx, kService, "ListEnrichments", request, response,
                        [this](const rpc::Caller&, const v1::ListEnrichmentsRequest&,
                               v1::ListEnrichmentsResponse& resp) {
                          for (const auto& e : store_.ListEnrichments()) {
                            v1::Enrichment* out = resp.add_enrichments();
                            out->set_key(e.key);
                            out->set_value(e.value);
                            for (const auto& name : e.endpoints) out->add_endpoints(name);
                          }
                        });
}

grpc::ServerUnaryReactor* RoutingService::DeleteEnrichment(
    grpc::CallbackServerContext* ctx, const v1::DeleteEnrichmentRequest* request,
    v1::DeleteEnrichmentResponse* response) {
  return runtime_.Unary(ctx, kService, "DeleteEnrichment", request, response,
                        [this](const rpc::Caller&, const v1::DeleteEnrichmentRequest& req,
                               v1::DeleteEnrichmentResponse&) {
                          ValidateRoutingName(req.key(), "enrichment key");
                          store_.DeleteEnrichment(req.key());
                        });
}

}  // namespace ferry::routing
