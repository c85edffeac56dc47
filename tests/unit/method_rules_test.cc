#include "services/rpc/method_rules.h"

#include <set>
#include <sstream>
#include <string>

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include "ferry/v1/access.grpc.pb.h"
#include "ferry/v1/audit.grpc.pb.h"
#include "ferry/v1/c2d.grpc.pb.h"
#include "ferry/v1/device_messaging.grpc.pb.h"
#include "ferry/v1/events.grpc.pb.h"
#include "ferry/v1/feedback.grpc.pb.h"
#include "ferry/v1/registry.grpc.pb.h"
#include "ferry/v1/routing.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace ferry::rpc {
namespace {

// Every service Ferry serves. A new service must be added here and get rules.
std::vector<const google::protobuf::ServiceDescriptor*> ServedServices() {
  // Naming a message of each file links its descriptors in.
  return {v1::Device::descriptor()->file()->FindServiceByName("Registry"),
          v1::Policy::descriptor()->file()->FindServiceByName("AccessPolicies"),
          v1::D2cMessage::descriptor()->file()->FindServiceByName("DeviceMessaging"),
          v1::Route::descriptor()->file()->FindServiceByName("Routing"),
          v1::StoredEvent::descriptor()->file()->FindServiceByName("Events"),
          v1::C2dMessage::descriptor()->file()->FindServiceByName("CloudToDevice"),
          v1::FeedbackRecord::descriptor()->file()->FindServiceByName("Feedback"),
          v1::AuditRecord::descriptor()->file()->FindServiceByName("AuditLog"),
          grpc::health::v1::HealthCheckRequest::descriptor()->file()->FindServiceByName("Health")};
}

TEST(MethodRules, EveryServedMethodHasARule) {
  for (const auto* service : ServedServices()) {
    ASSERT_NE(service, nullptr);
    for (int i = 0; i < service->method_count(); ++i) {
      const auto* method = service->method(i);
      EXPECT_NE(FindMethodRule(service->full_name(), method->name()), nullptr)
          << service->full_name() << "/" << method->name() << " has no authorization rule";
    }
  }
}

TEST(MethodRules, EveryRuleNamesARealMethod) {
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const MethodRule& rule : MethodRules()) {
    const auto* service = pool->FindServiceByName(std::string(rule.service));
    ASSERT_NE(service, nullptr) << rule.service;
    EXPECT_NE(service->FindMethodByName(std::string(rule.method)), nullptr)
        << rule.service << "/" << rule.method;
  }
}

TEST(MethodRules, OnlyHealthNeedsNoPermission) {
  for (const MethodRule& rule : MethodRules()) {
    if (rule.permission == auth::Permission::kNone) {
      EXPECT_EQ(rule.service, "grpc.health.v1.Health") << rule.method;
    }
  }
}

TEST(MethodRules, EveryFerryServiceInTheDescriptorPoolIsServed) {
  // Catches a new .proto service that was never added to ServedServices().
  std::set<std::string> served;
  for (const auto* s : ServedServices()) served.insert(s->full_name());
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  std::stringstream files(FERRY_PROTO_FILES);
  int checked = 0;
  for (std::string name; std::getline(files, name, ',');) {
    const auto* file = pool->FindFileByName(name);
    ASSERT_NE(file, nullptr) << name << " is not linked in";
    ++checked;
    for (int i = 0; i < file->service_count(); ++i) {
      EXPECT_TRUE(served.count(file->service(i)->full_name())) << file->service(i)->full_name();
    }
  }
  EXPECT_GE(checked, 5);
}

}  // namespace
}  // namespace ferry::rpc
