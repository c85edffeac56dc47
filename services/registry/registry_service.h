#pragma once

#include "core/clock.h"
#include "ferry/v1/registry.grpc.pb.h"
#include "services/registry/device_store.h"
#include "services/rpc/runtime.h"

namespace ferry::registry {

// ferry.v1.Registry: decodes, applies IoT Hub's identity rules, calls the
// store, encodes. Every method goes through RpcRuntime::Unary.
class RegistryService final : public ferry::v1::Registry::CallbackService {
 public:
  RegistryService(rpc::RpcRuntime& runtime, DeviceStore& store, const Clock& clock)
      : runtime_(runtime), store_(store), clock_(clock) {}

  grpc::ServerUnaryReactor* CreateDevice(grpc::CallbackServerContext* ctx,
                                         const v1::CreateDeviceRequest* request,
                                         v1::Device* response) override;
  grpc::ServerUnaryReactor* GetDevice(grpc::CallbackServerContext* ctx,
                                      const v1::GetDeviceRequest* request,
                                      v1::Device* response) override;
  grpc::ServerUnaryReactor* UpdateDevice(grpc::CallbackServerContext* ctx,
                                         const v1::UpdateDeviceRequest* request,
                                         v1::Device* response) override;
  grpc::ServerUnaryReactor* DeleteDevice(grpc::CallbackServerContext* ctx,
                                         const v1::DeleteDeviceRequest* request,
                                         v1::DeleteDeviceResponse* response) override;
  grpc::ServerUnaryReactor* ListDevices(grpc::CallbackServerContext* ctx,
                                        const v1::ListDevicesRequest* request,
                                        v1::ListDevicesResponse* response) override;
  grpc::ServerUnaryReactor* RegenerateDeviceKey(grpc::CallbackServerContext* ctx,
                                                const v1::RegenerateDeviceKeyRequest* request,
                                                v1::Device* response) override;

 private:
  rpc::RpcRuntime& runtime_;
  DeviceStore& store_;
  const Clock& clock_;
};

// Proto encoding, shared with tests.
void ToProto(const Device& device, v1::Device* out);

}  // namespace ferry::registry
