#pragma once

#include <optional>
#include <string>

#include "core/clock.h"

namespace ferry::registry {

enum class DeviceStatus { kEnabled, kDisabled };
enum class ConnectionState { kDisconnected, kConnected };

// A device identity, as IoT Hub's registry keeps it.
struct Device {
  std::string id;
  std::string generation_id;
  std::string etag;
  DeviceStatus status = DeviceStatus::kEnabled;
  std::string status_reason;
  TimePoint status_updated_at;
  std::string primary_key;
  std::string secondary_key;
  ConnectionState connection_state = ConnectionState::kDisconnected;
  std::optional<TimePoint> connection_state_updated_at;
  std::optional<TimePoint> last_activity_at;
  TimePoint created_at;
};

}  // namespace ferry::registry
