#include <gtest/gtest.h>

#include "ferry/v1/routing.grpc.pb.h"
#include "tests/support/api_harness.h"
#include "tests/support/pg.h"

namespace ferry {
namespace {

class RoutingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.Migrate();
    api_ = std::make_unique<testing::ApiHarness>(db_.url());
    stub_ = v1::Routing::NewStub(api_->Channel());
  }

  template <typename Req, typename Resp, typename Call>
  grpc::Status Do(Call call, const Req& req, Resp* resp, std::string* reason = nullptr) {
    grpc::ClientContext ctx;
    api_->AsOwner(ctx);
    const grpc::Status s = ((*stub_).*call)(&ctx, req, resp);
    if (reason != nullptr) *reason = testing::ErrorReason(ctx);
    return s;
  }

  grpc::Status CreateRoute(const std::string& name, const std::string& condition,
                           const std::string& endpoint = "events", std::string* reason = nullptr) {
    v1::CreateRouteRequest req;
    req.mutable_route()->set_name(name);
    req.mutable_route()->set_condition(condition);
    req.mutable_route()->set_endpoint(endpoint);
    req.mutable_route()->set_enabled(true);
    v1::Route out;
    return Do(&v1::Routing::Stub::CreateRoute, req, &out, reason);
  }

  testing::TestDatabase db_;
  std::unique_ptr<testing::ApiHarness> api_;
  std::unique_ptr<v1::Routing::Stub> stub_;
};

TEST_F(RoutingTest, RoutesAndEndpointsRoundTripWithTheirRules) {
  v1::CreateEndpointRequest ep;
  ep.mutable_endpoint()->set_name("alerts");
  ep.mutable_endpoint()->set_kind(v1::ENDPOINT_KIND_KAFKA);
  ep.mutable_endpoint()->set_kafka_topic("ferry.alerts");
  v1::Endpoint endpoint;
  ASSERT_TRUE(Do(&v1::Routing::Stub::CreateEndpoint, ep, &endpoint).ok());
  std::string reason;
  EXPECT_EQ(Do(&v1::Routing::Stub::CreateEndpoint, ep, &endpoint, &reason).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  ep.mutable_endpoint()->set_name("loop");
  ep.mutable_endpoint()->set_kafka_topic("ferry.d2c");
  EXPECT_EQ(Do(&v1::Routing::Stub::CreateEndpoint, ep, &endpoint).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  ASSERT_TRUE(CreateRoute("hot", "AS_NUMBER(temperature) > 30", "alerts").ok());
  EXPECT_EQ(CreateRoute("hot", "true", "events", &reason).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(reason, "RouteAlreadyExists");
  EXPECT_EQ(CreateRoute("nowhere", "true", "missing", &reason).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(reason, "EndpointNotFound");
  EXPECT_EQ(CreateRoute("bad name!", "true").error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // A condition that does not parse is refused with its position.
  grpc::ClientContext ctx;
  api_->AsOwner(ctx);
  v1::CreateRouteRequest bad;
  bad.mutable_route()->set_name("broken");
  bad.mutable_route()->set_condition("temperature > ");
  bad.mutable_route()->set_endpoint("events");
  v1::Route ignored;
  const grpc::Status s = stub_->CreateRoute(&ctx, bad, &ignored);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("position"), std::string::npos) << s.error_message();

  v1::ListRoutesResponse routes;
  ASSERT_TRUE(Do(&v1::Routing::Stub::ListRoutes, v1::ListRoutesRequest(), &routes).ok());
  ASSERT_EQ(routes.routes_size(), 1);
  EXPECT_EQ(routes.routes(0).endpoint(), "alerts");

  // An endpoint in use cannot go; the built-in one never can.
  v1::DeleteEndpointRequest del;
  del.set_name("alerts");
  v1::DeleteEndpointResponse none;
  EXPECT_EQ(Do(&v1::Routing::Stub::DeleteEndpoint, del, &none).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  del.set_name("events");
  EXPECT_EQ(Do(&v1::Routing::Stub::DeleteEndpoint, del, &none).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

// IoT Hub's reserved endpoint names, in any case, and topic names Kafka
// would refuse (a NUL used to cut "ferry.d2c\0x" into the source topic).
TEST_F(RoutingTest, ReservedEndpointNamesAndBadTopicsAreRefused) {
  for (const auto& [name, topic] :
       std::vector<std::pair<std::string, std::string>>{{"events", "t"},
                                                        {"fileNotifications", "t"},
                                                        {"FileNotifications", "t"},
                                                        {"EVENTS", "t"},
                                                        {"$default", "t"},
                                                        {"ok", "has space"},
                                                        {"ok", std::string(250, 't')},
                                                        {"ok", ".."},
                                                        {"ok", std::string("ferry.d2c\0x", 11)}}) {
    v1::CreateEndpointRequest ep;
    ep.mutable_endpoint()->set_name(name);
    ep.mutable_endpoint()->set_kind(v1::ENDPOINT_KIND_KAFKA);
    ep.mutable_endpoint()->set_kafka_topic(topic);
    v1::Endpoint out;
    std::string reason;
    EXPECT_EQ(Do(&v1::Routing::Stub::CreateEndpoint, ep, &out, &reason).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT)
        << name << " " << topic;
    EXPECT_EQ(reason, "ArgumentInvalid") << name;
  }
  v1::ListEndpointsResponse all;
  ASSERT_TRUE(Do(&v1::Routing::Stub::ListEndpoints, v1::ListEndpointsRequest(), &all).ok());
  EXPECT_EQ(all.endpoints_size(), 1);  // the built-in events
}

TEST_F(RoutingTest, TestingConditionsAndAllRoutesAgainstASample) {
  ASSERT_TRUE(CreateRoute("hot", "AS_NUMBER(temperature) > 30").ok());
  ASSERT_TRUE(CreateRoute("json-alert", "$body.alert = true").ok());
  v1::SampleMessage sample;
  sample.mutable_message()->set_body("{\"alert\":true}");
  sample.mutable_message()->set_content_type("application/json");
  sample.mutable_message()->set_content_encoding("utf-8");
  (*sample.mutable_message()->mutable_properties())["Temperature"] = "21";

  v1::TestRouteRequest one;
  *one.mutable_sample() = sample;
  one.set_route("hot");
  v1::TestRouteResponse result;
  ASSERT_TRUE(Do(&v1::Routing::Stub::TestRoute, one, &result).ok());
  EXPECT_EQ(result.result(), v1::TEST_RESULT_NOT_MATCHED);
  one.clear_route();
  one.set_condition("missing = 'x'");
  ASSERT_TRUE(Do(&v1::Routing::Stub::TestRoute, one, &result).ok());
  EXPECT_EQ(result.result(), v1::TEST_RESULT_UNDEFINED);

  v1::TestAllRoutesRequest all;
  *all.mutable_sample() = sample;
  v1::TestAllRoutesResponse matched;
  ASSERT_TRUE(Do(&v1::Routing::Stub::TestAllRoutes, all, &matched).ok());
  ASSERT_EQ(matched.matched_routes_size(), 1);
  EXPECT_EQ(matched.matched_routes(0), "json-alert");
  EXPECT_FALSE(matched.fallback_applies());

  // Nothing matches: the fallback applies while it is on.
  all.mutable_sample()->mutable_message()->set_body("{\"alert\":false}");
  ASSERT_TRUE(Do(&v1::Routing::Stub::TestAllRoutes, all, &matched).ok());
  EXPECT_TRUE(matched.fallback_applies());
  EXPECT_EQ(matched.endpoints(0), "events");
  v1::SetFallbackRequest off;
  off.set_enabled(false);
  v1::RoutingSettings settings;
  ASSERT_TRUE(Do(&v1::Routing::Stub::SetFallback, off, &settings).ok());
  EXPECT_FALSE(settings.fallback_enabled());
  v1::TestAllRoutesResponse dropped;
  ASSERT_TRUE(Do(&v1::Routing::Stub::TestAllRoutes, all, &dropped).ok());
  EXPECT_FALSE(dropped.fallback_applies());
  EXPECT_EQ(dropped.endpoints_size(), 0);
}

TEST_F(RoutingTest, EveryChangeBumpsTheRouteSetVersion) {
  v1::RoutingSettings before, after;
  ASSERT_TRUE(Do(&v1::Routing::Stub::GetSettings, v1::GetRoutingSettingsRequest(), &before).ok());
  ASSERT_TRUE(CreateRoute("r1", "true").ok());
  ASSERT_TRUE(Do(&v1::Routing::Stub::GetSettings, v1::GetRoutingSettingsRequest(), &after).ok());
  EXPECT_GT(after.version(), before.version());
}

}  // namespace
}  // namespace ferry
