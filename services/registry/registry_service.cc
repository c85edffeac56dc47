#include "services/registry/registry_service.h"

#include <google/protobuf/util/time_util.h>

#include "core/error.h"
#include "core/log.h"
#include "services/registry/device_rules.h"
#include "services/rpc/proto_time.h"

namespace ferry::registry {
namespace {

constexpr std::string_view kService = "ferry.v1.Registry";
constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;

const std::shared_ptr<spdlog::logger>& Logger() {
  static const auto logger = log::Get("registry");
  return logger;
}

DeviceStatus StatusFromProto(v1::DeviceStatus s) {
  switch (s) {
    case v1::DEVICE_STATUS_UNSPECIFIED:
    case v1::DEVICE_STATUS_ENABLED:
      return DeviceStatus::kEnabled;
    case v1::DEVICE_STATUS_DISABLED:
      return DeviceStatus::kDisabled;
    default:
      throw Error(Reason::kArgumentInvalid, "status must be ENABLED or DISABLED");
  }
}

// Empty keys are generated; given keys must be valid.
std::string KeyOrNew(const std::string& key, std::string_view field) {
  if (key.empty()) return NewSymmetricKey();
  ValidateSymmetricKey(key, field);
  return key;
}

std::optional<std::string> KeyOrKeep(const std::string& key, std::string_view field) {
  if (key.empty()) return std::nullopt;
  ValidateSymmetricKey(key, field);
  return key;
}

}  // namespace

void ToProto(const Device& d, v1::Device* out) {
  out->set_device_id(d.id);
  out->set_generation_id(d.generation_id);
  out->set_etag(d.etag);
  out->set_status(d.status == DeviceStatus::kEnabled ? v1::DEVICE_STATUS_ENABLED
                                                     : v1::DEVICE_STATUS_DISABLED);
  out->set_status_reason(d.status_reason);
  *out->mutable_status_update_time() = rpc::ToProtoTime(d.status_updated_at);
  out->mutable_authentication()->set_primary_key(d.primary_key);
  out->mutable_authentication()->set_secondary_key(d.secondary_key);
  out->set_connection_state(d.connection_state == ConnectionState::kConnected
                                ? v1::CONNECTION_STATE_CONNECTED
                                : v1::CONNECTION_STATE_DISCONNECTED);
  if (d.connection_state_updated_at) {
    *out->mutable_connection_state_update_time() = rpc::ToProtoTime(*d.connection_state_updated_at);
  }
  if (d.last_activity_at)
    *out->mutable_last_activity_time() = rpc::ToProtoTime(*d.last_activity_at);
  *out->mutable_created_time() = rpc::ToProtoTime(d.created_at);
}

grpc::ServerUnaryReactor* RegistryService::CreateDevice(grpc::CallbackServerContext* ctx,
                                                        const v1::CreateDeviceRequest* request,
                                                        v1::Device* response) {
  return runtime_.Unary(
      ctx, kService, "CreateDevice", request, response,
      [this](const rpc::Caller& caller, const v1::CreateDeviceRequest& req, v1::Device& resp) {
        const v1::Device& in = req.device();
        ValidateDeviceId(in.device_id());
        ValidateStatusReason(in.status_reason());
        NewDevice device{
            .id = in.device_id(),
            .status = StatusFromProto(in.status()),
            .status_reason = in.status_reason(),
            .primary_key = KeyOrNew(in.authentication().primary_key(), "primary key"),
            .secondary_key = KeyOrNew(in.authentication().secondary_key(), "secondary key"),
            .generation_id = NewGenerationId(),
            .etag = NewEtag(),
        };
        const Device created = store_.Create(device, clock_.Now());
        Logger()->info("device created device=\"{}\" generation={} by=\"{}\"", created.id,
                       created.generation_id, caller.principal);
        ToProto(created, &resp);
      });
}

grpc::ServerUnaryReactor* RegistryService::GetDevice(grpc::CallbackServerContext* ctx,
                                                     const v1::GetDeviceRequest* request,
                                                     v1::Device* response) {
  return runtime_.Unary(
      ctx, kService, "GetDevice", request, response,
      [this](const rpc::Caller&, const v1::GetDeviceRequest& req, v1::Device& resp) {
        ValidateDeviceId(req.device_id());
        ToProto(store_.Get(req.device_id()), &resp);
      });
}

grpc::ServerUnaryReactor* RegistryService::UpdateDevice(grpc::CallbackServerContext* ctx,
                                                        const v1::UpdateDeviceRequest* request,
                                                        v1::Device* response) {
  return runtime_.Unary(
      ctx, kService, "UpdateDevice", request, response,
      [this](const rpc::Caller& caller, const v1::UpdateDeviceRequest& req, v1::Device& resp) {
        const v1::Device& in = req.device();
        ValidateDeviceId(in.device_id());
        ValidateStatusReason(in.status_reason());
        DeviceUpdate update{
            .id = in.device_id(),
            .if_match = req.if_match(),
            .status = StatusFromProto(in.status()),
            .status_reason = in.status_reason(),
            .primary_key = KeyOrKeep(in.authentication().primary_key(), "primary key"),
            .secondary_key = KeyOrKeep(in.authentication().secondary_key(), "secondary key"),
            .new_etag = NewEtag(),
        };
        const Device updated = store_.Update(update, clock_.Now());
        Logger()->info("device updated device=\"{}\" status={} by=\"{}\"", updated.id,
                       updated.status == DeviceStatus::kEnabled ? "enabled" : "disabled",
                       caller.principal);
        ToProto(updated, &resp);
      });
}

grpc::ServerUnaryReactor* RegistryService::DeleteDevice(grpc::CallbackServerContext* ctx,
                                                        const v1::DeleteDeviceRequest* request,
                                                        v1::DeleteDeviceResponse* response) {
  return runtime_.Unary(ctx, kService, "DeleteDevice", request, response,
                        [this](const rpc::Caller& caller, const v1::DeleteDeviceRequest& req,
                               v1::DeleteDeviceResponse&) {
                          ValidateDeviceId(req.device_id());
                          const auto audit = audit::For(caller, "device.delete", req.device_id());
                          store_.Delete(req.device_id(), req.if_match(), &audit);
                          Logger()->info("device deleted device=\"{}\" by=\"{}\"", req.device_id(),
                                         caller.principal);
                        });
}

grpc::ServerUnaryReactor* RegistryService::ListDevices(grpc::CallbackServerContext* ctx,
                                                       const v1::ListDevicesRequest* request,
                                                       v1::ListDevicesResponse* response) {
  return runtime_.Unary(
      ctx, kService, "ListDevices", request, response,
      [this](const rpc::Caller&, const v1::ListDevicesRequest& req, v1::ListDevicesResponse& resp) {
        if (req.page_size() < 0 || req.page_size() > kMaxPageSize) {
          throw Error(Reason::kArgumentInvalid, "page_size must be 0 (default 100) to 1000");
        }
        const int size = req.page_size() == 0 ? kDefaultPageSize : req.page_size();
        const std::string after = req.page_token().empty() ? "" : DecodePageToken(req.page_token());
        // One extra row tells whether another page follows.
        std::vector<Device> devices = store_.List(after, size + 1);
        const bool more = devices.size() > static_cast<std::size_t>(size);
        if (more) devices.pop_back();
        for (const Device& d : devices) ToProto(d, resp.add_devices());
        if (more) resp.set_next_page_token(EncodePageToken(devices.back().id));
      });
}

grpc::ServerUnaryReactor* RegistryService::RegenerateDeviceKey(
    grpc::CallbackServerContext* ctx, const v1::RegenerateDeviceKeyRequest* request,
    v1::Device* response) {
  return runtime_.Unary(
      ctx, kService, "RegenerateDeviceKey", request, response,
      [this](const rpc::Caller& caller, const v1::RegenerateDeviceKeyRequest& req,
             v1::Device& resp) {
        ValidateDeviceId(req.device_id());
        if (req.slot() != v1::KEY_SLOT_PRIMARY && req.slot() != v1::KEY_SLOT_SECONDARY) {
          throw Error(Reason::kArgumentInvalid, "slot must be PRIMARY or SECONDARY");
        }
        const bool primary = req.slot() == v1::KEY_SLOT_PRIMARY;
        const Device d =
            store_.SetKey(req.device_id(), primary, NewSymmetricKey(), NewEtag(), clock_.Now());
        Logger()->info("device key regenerated device=\"{}\" slot={} by=\"{}\"", d.id,
                       primary ? "primary" : "secondary", caller.principal);
        ToProto(d, &resp);
      });
}

}  // namespace ferry::registry
