#pragma once

#include <string>

#include "core/clock.h"
#include "ferry/v1/routing.grpc.pb.h"
#include "services/routing/route_store.h"
#include "services/rpc/runtime.h"

namespace ferry::routing {

// ferry.v1.Routing: routes, endpoints, the fallback switch, and testing
// conditions against sample messages. Conditions are parsed before they are
// stored: one that does not parse is refused with its position.
class RoutingService final : public ferry::v1::Routing::CallbackService {
 public:
  RoutingService(rpc::RpcRuntime& runtime, RouteStore& store, std::string d2c_topic,
                 const Clock& clock)
      : runtime_(runtime), store_(store), d2c_topic_(std::move(d2c_topic)), clock_(clock) {}

  grpc::ServerUnaryReactor* CreateEndpoint(grpc::CallbackServerContext*,
                                           const v1::CreateEndpointRequest*,
                                           v1::Endpoint*) override;
  grpc::ServerUnaryReactor* ListEndpoints(grpc::CallbackServerContext*,
                                          const v1::ListEndpointsRequest*,
                                          v1::ListEndpointsResponse*) override;
  grpc::ServerUnaryReactor* DeleteEndpoint(grpc::CallbackServerContext*,
                                           const v1::DeleteEndpointRequest*,
                                           v1::DeleteEndpointResponse*) override;
  grpc::ServerUnaryReactor* CreateRoute(grpc::CallbackServerContext*, const v1::CreateRouteRequest*,
                                        v1::Route*) override;
  grpc::ServerUnaryReactor* UpdateRoute(grpc::CallbackServerContext*, const v1::UpdateRouteRequest*,
                                        v1::Route*) override;
  grpc::ServerUnaryReactor* GetRoute(grpc::CallbackServerContext*, const v1::GetRouteRequest*,
                                     v1::Route*) override;
  grpc::ServerUnaryReactor* ListRoutes(grpc::CallbackServerContext*, const v1::ListRoutesRequest*,
                                       v1::ListRoutesResponse*) override;
  grpc::ServerUnaryReactor* DeleteRoute(grpc::CallbackServerContext*, const v1::DeleteRouteRequest*,
                                        v1::DeleteRouteResponse*) override;
  grpc::ServerUnaryReactor* GetSettings(grpc::CallbackServerContext*,
                                        const v1::GetRoutingSettingsRequest*,
                                        v1::RoutingSettings*) override;
  grpc::ServerUnaryReactor* SetFallback(grpc::CallbackServerContext*, const v1::SetFallbackRequest*,
                                        v1::RoutingSettings*) override;
  grpc::ServerUnaryReactor* TestRoute(grpc::CallbackServerContext*, const v1::TestRouteRequest*,
                                      v1::TestRouteResponse*) override;
  grpc::ServerUnaryReactor* TestAllRoutes(grpc::CallbackServerContext*,
                                          const v1::TestAllRoutesRequest*,
                                          v1::TestAllRoutesResponse*) override;
  grpc::ServerUnaryReactor* SetEnrichment(grpc::CallbackServerContext* ctx,
                                          const v1::SetEnrichmentRequest* request,
                                          v1::Enrichment* response) override;
  grpc::ServerUnaryReactor* ListEnrichments(grpc::CallbackServerContext* ctx,
                                            const v1::ListEnrichmentsRequest* request,
                                            v1::ListEnrichmentsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteEnrichment(grpc::CallbackServerContext* ctx,
                                             const v1::DeleteEnrichmentRequest* request,
                                             v1::DeleteEnrichmentResponse* response) override;

 private:
  RouteRecord RouteFromProto(const v1::Route& in) const;

  rpc::RpcRuntime& runtime_;
  RouteStore& store_;
  std::string d2c_topic_;
  const Clock& clock_;
};

// 1 to 64 ASCII letters, digits, - . _ (IoT Hub's route and endpoint names);
// throws ferry::Error(kArgumentInvalid) naming `what`.
void ValidateRoutingName(const std::string& name, std::string_view what);

}  // namespace ferry::routing
