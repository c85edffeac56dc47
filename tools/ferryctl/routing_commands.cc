#include "tools/ferryctl/routing_commands.h"

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "ferry/v1/routing.grpc.pb.h"
#include "tools/ferryctl/ferryctl.h"

namespace ferry::ctl {
namespace {

class RoutingClient final : public Session {
 public:
  using Session::Session;

  int CreateEndpoint(const std::string& name, const std::string& topic) {
    v1::CreateEndpointRequest req;
    req.mutable_endpoint()->set_name(name);
    req.mutable_endpoint()->set_kind(v1::ENDPOINT_KIND_KAFKA);
    req.mutable_endpoint()->set_kafka_topic(topic);
    v1::Endpoint resp;
    const grpc::Status s = routing_->CreateEndpoint(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (options_.json) {
      out_ << Json(resp) << "\n";
    } else {
      out_ << "created endpoint " << resp.name() << " -> kafka topic " << resp.kafka_topic()
           << "\n";
    }
    return kExitOk;
  }

  int ListEndpoints() {
    v1::ListEndpointsResponse resp;
    const grpc::Status s =
        routing_->ListEndpoints(Context().get(), v1::ListEndpointsRequest(), &resp);
    if (!s.ok()) return Fail(s);
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : resp.endpoints()) {
      if (options_.json) {
        out_ << Json(e) << "\n";
      } else {
        rows.push_back({e.name(), e.kind() == v1::ENDPOINT_KIND_KAFKA ? "kafka" : "event store",
                        e.kafka_topic().empty() ? "-" : e.kafka_topic()});
      }
    }
    if (!options_.json) Table(out_, {"ENDPOINT", "KIND", "TOPIC"}, rows);
    return kExitOk;
  }

  int DeleteEndpoint(const std::string& name) {
    v1::DeleteEndpointRequest req;
    req.set_name(name);
    v1::DeleteEndpointResponse resp;
    const grpc::Status s = routing_->DeleteEndpoint(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    return Done(req, "deleted endpoint " + name);
  }

  int SaveRoute(bool create, const std::string& name, const std::string& condition,
                const std::string& endpoint, bool disabled, bool lifecycle) {
    v1::Route r;
    r.set_name(name);
    r.set_condition(condition);
    r.set_endpoint(endpoint);
    r.set_enabled(!disabled);
    r.set_source(lifecycle ? v1::ROUTE_SOURCE_DEVICE_LIFECYCLE_EVENTS
                           : v1::ROUTE_SOURCE_DEVICE_MESSAGES);
    v1::Route resp;
    grpc::Status s;
    if (create) {
      v1::CreateRouteRequest req;
      *req.mutable_route() = r;
      s = routing_->CreateRoute(Context().get(), req, &resp);
    } else {
      v1::UpdateRouteRequest req;
      *req.mutable_route() = r;
      s = routing_->UpdateRoute(Context().get(), req, &resp);
    }
    if (!s.ok()) return Fail(s);
    PrintRoutes({resp});
    return kExitOk;
  }

  void PrintRoutes(const std::vector<v1::Route>& routes) const {
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : routes) {
      if (options_.json) {
        out_ << Json(r) << "\n";
      } else {
        rows.push_back(
            {r.name(), r.enabled() ? "yes" : "no",
             r.source() == v1::ROUTE_SOURCE_DEVICE_LIFECYCLE_EVENTS ? "lifecycle" : "messages",
             r.endpoint(), r.condition().empty() ? "true" : r.condition()});
      }
    }
    if (!options_.json) Table(out_, {"ROUTE", "ENABLED", "SOURCE", "ENDPOINT", "CONDITION"}, rows);
  }

  int ListRoutes() {
    v1::ListRoutesResponse resp;
    const grpc::Status s = routing_->ListRoutes(Context().get(), v1::ListRoutesRequest(), &resp);
    if (!s.ok()) return Fail(s);
    PrintRoutes({resp.routes().begin(), resp.routes().end()});
    return kExitOk;
  }

  int DeleteRoute(const std::string& name) {
    v1::DeleteRouteRequest req;
    req.set_name(name);
    v1::DeleteRouteResponse resp;
    const grpc::Status s = routing_->DeleteRoute(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    return Done(req, "deleted route " + name);
  }

  int GetRoute(const std::string& name) {
    v1::GetRouteRequest req;
    req.set_name(name);
    v1::Route r;
    const grpc::Status s = routing_->GetRoute(Context().get(), req, &r);
    if (!s.ok()) return Fail(s);
    if (options_.json) {
      out_ << Json(r) << "\n";
      return kExitOk;
    }
    Table(out_, {"FIELD", "VALUE"},
          {{"name", r.name()},
           {"enabled", r.enabled() ? "yes" : "no"},
           {"source",
            r.source() == v1::ROUTE_SOURCE_DEVICE_LIFECYCLE_EVENTS ? "lifecycle" : "messages"},
           {"endpoint", r.endpoint()},
           {"condition", r.condition().empty() ? "true" : r.condition()},
           {"created_time", Time(r.created_time())},
           {"updated_time", Time(r.updated_time())}});
    return kExitOk;
  }

  int Settings() {
    v1::RoutingSettings resp;
    const grpc::Status s =
        routing_->GetSettings(Context().get(), v1::GetRoutingSettingsRequest(), &resp);
    if (!s.ok()) return Fail(s);
    if (options_.json) {
      out_ << Json(resp) << "\n";
      return kExitOk;
    }
    Table(out_, {"FIELD", "VALUE"},
          {{"fallback", resp.fallback_enabled() ? "on" : "off"},
           {"version", std::to_string(resp.version())}});
    return kExitOk;
  }

  int SetFallback(bool enabled) {
    v1::SetFallbackRequest req;
    req.set_enabled(enabled);
    v1::RoutingSettings resp;
    const grpc::Status s = routing_->SetFallback(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    out_ << (options_.json ? Json(resp)
                           : std::string("fallback ") + (resp.fallback_enabled() ? "on" : "off"))
         << "\n";
    return kExitOk;
  }

  // Tries a condition or a stored route (or, with neither, every enabled
  // route) on a sample.
  int TestRoutes(const std::string& condition, const std::string& route, const std::string& body,
                 const std::string& content_type, const std::vector<std::string>& properties) {
    v1::SampleMessage sample;
    sample.mutable_message()->set_body(body);
    sample.mutable_message()->set_content_type(content_type);
    if (!content_type.empty()) sample.mutable_message()->set_content_encoding("utf-8");
    for (const auto& kv : properties) {
      const auto eq = kv.find('=');
      (*sample.mutable_message()->mutable_properties())[kv.substr(0, eq)] =
          eq == std::string::npos ? "" : kv.substr(eq + 1);
    }
    if (!condition.empty() || !route.empty()) {
      v1::TestRouteRequest req;
      req.set_condition(condition);
      req.set_route(route);
      *req.mutable_sample() = sample;
      v1::TestRouteResponse resp;
      const grpc::Status s = routing_->TestRoute(Context().get(), req, &resp);
      if (!s.ok()) return Fail(s);
      out_ << (options_.json ? Json(resp) : v1::TestResult_Name(resp.result())) << "\n";
      return kExitOk;
    }
    v1::TestAllRoutesRequest req;
    *req.mutable_sample() = sample;
    v1::TestAllRoutesResponse resp;
    const grpc::Status s = routing_->TestAllRoutes(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (options_.json) {
      out_ << Json(resp) << "\n";
    } else {
      out_ << "matched routes: " << resp.matched_routes_size() << "\n";
      for (const auto& r : resp.matched_routes()) out_ << "  " << r << "\n";
      out_ << "endpoints:";
      for (const auto& e : resp.endpoints()) out_ << " " << e;
      out_ << (resp.fallback_applies() ? " (fallback)" : "") << "\n";
    }
    return kExitOk;
  }

 private:
  std::unique_ptr<v1::Routing::Stub> routing_ = v1::Routing::NewStub(channel_);
};

}  // namespace

void AddRoutingCommands(CLI::App& app, const Options& options, std::ostream& out, std::ostream& err,
                        int& code) {
  struct State {
    std::string route, condition, endpoint = "events", topic, body, content_type, state;
    std::vector<std::string> properties;
    bool disabled = false, lifecycle = false;
  };
  auto st = std::make_shared<State>();
  auto client = [&options, &out, &err] { return RoutingClient(options, out, err); };

  CLI::App* routes = app.add_subcommand("routes", "Message routes (needs ServiceConnect)")
                         ->footer("Example: ferryctl routes list");
  routes->require_subcommand(1);
  for (const bool create : {true, false}) {
    CLI::App* cmd =
        routes
            ->add_subcommand(create ? "create" : "update",
                             create ? "Create a route" : "Replace a route")
            ->footer(std::string("Example: ferryctl routes ") + (create ? "create" : "update") +
                     " hot --endpoint alerts --condition 'AS_NUMBER(temperature) > 30'");
    cmd->add_option("name", st->route, "Route name")->required();
    cmd->add_option("--condition", st->condition, "Routing query (empty: every message)");
    cmd->add_option("--endpoint", st->endpoint, "Endpoint name")->capture_default_str();
    cmd->add_flag("--disabled", st->disabled, "Store the route disabled");
    cmd->add_flag("--lifecycle", st->lifecycle,
                  "Route device lifecycle events instead of messages");
    cmd->callback([st, client, create, &code] {
      code = client().SaveRoute(create, st->route, st->condition, st->endpoint, st->disabled,
                                st->lifecycle);
    });
  }
  CLI::App* rget =
      routes->add_subcommand("get", "Show one route")->footer("Example: ferryctl routes get hot");
  rget->add_option("name", st->route, "Route name")->required();
  rget->callback([st, client, &code] { code = client().GetRoute(st->route); });
  routes->add_subcommand("list", "List routes")
      ->footer("Example: ferryctl routes list --json")
      ->callback([client, &code] { code = client().ListRoutes(); });
  CLI::App* rdel = routes->add_subcommand("delete", "Delete a route")
                       ->footer("Example: ferryctl routes delete hot");
  rdel->add_option("name", st->route, "Route name")->required();
  rdel->callback([st, client, &code] { code = client().DeleteRoute(st->route); });
  CLI::App* rtest =
      routes
          ->add_subcommand(
              "test", "Try a condition, a stored route, or every enabled route on a sample message")
          ->footer(
              "Example: ferryctl routes test --condition '$body.temp > 30' --body '{\"temp\":31}' "
              "--content-type application/json\n"
              "Example: ferryctl routes test --route hot --property temperature=31");
  auto* cond = rtest->add_option("--condition", st->condition, "Condition to try");
  rtest->add_option("--route", st->route, "Stored route to try (default: every enabled route)")
      ->excludes(cond);
  rtest->add_option("--body", st->body, "Sample body");
  rtest->add_option("--content-type", st->content_type, "Sample content type (encoding utf-8)");
  rtest->add_option("--property", st->properties, "Application property name=value (repeatable)");
  rtest->callback([st, client, &code] {
    code =
        client().TestRoutes(st->condition, st->route, st->body, st->content_type, st->properties);
  });
  CLI::App* fallback = routes->add_subcommand("fallback", "Turn the fallback route on or off")
                           ->footer("Example: ferryctl routes fallback off");
  fallback->add_option("state", st->state, "on or off")
      ->required()
      ->check(CLI::IsMember({"on", "off"}));
  fallback->callback([st, client, &code] { code = client().SetFallback(st->state == "on"); });
  routes->add_subcommand("settings", "The fallback's state and the routing version")
      ->footer("Example: ferryctl routes settings")
      ->callback([client, &code] { code = client().Settings(); });

  CLI::App* endpoints = app.add_subcommand("endpoints", "Routing endpoints (needs ServiceConnect)")
                            ->footer("Example: ferryctl endpoints list");
  endpoints->require_subcommand(1);
  CLI::App* ecreate =
      endpoints->add_subcommand("create", "Create a Kafka endpoint")
          ->footer("Example: ferryctl endpoints create alerts --kafka-topic ferry.alerts");
  ecreate->add_option("name", st->endpoint, "Endpoint name")->required();
  ecreate->add_option("--kafka-topic", st->topic, "Kafka topic")->required();
  ecreate->callback(
      [st, client, &code] { code = client().CreateEndpoint(st->endpoint, st->topic); });
  endpoints->add_subcommand("list", "List endpoints")
      ->footer("Example: ferryctl endpoints list")
      ->callback([client, &code] { code = client().ListEndpoints(); });
  CLI::App* edel = endpoints->add_subcommand("delete", "Delete an endpoint no route uses")
                       ->footer("Example: ferryctl endpoints delete alerts");
  edel->add_option("name", st->endpoint, "Endpoint name")->required();
  edel->callback([st, client, &code] { code = client().DeleteEndpoint(st->endpoint); });
}

}  // namespace ferry::ctl
