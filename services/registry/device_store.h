#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/audit/audit.h"
#include "core/clock.h"
#include "services/auth/change_observer.h"
#include "services/registry/device.h"

namespace ferry::pg {
class Pool;
}

namespace ferry::registry {

struct NewDevice {
  std::string id;
  DeviceStatus status = DeviceStatus::kEnabled;
  std::string status_reason;
  std::string primary_key;
  std::string secondary_key;
  std::string generation_id;
  std::string etag;
};

struct DeviceUpdate {
  std::string id;
  std::string if_match;  // RFC 7232; empty or "*" is unconditional
  DeviceStatus status = DeviceStatus::kEnabled;
  std::string status_reason;
  std::optional<std::string> primary_key;  // nullopt keeps the stored key
  std::optional<std::string> secondary_key;
  std::string new_etag;
};

// The registry's PostgreSQL adapter (table `devices`). Inputs are validated
// by the caller; the store enforces existence and etags atomically. Throws
// ferry::Error: kDeviceAlreadyExists, kDeviceNotFound, kPreconditionFailed,
// kServiceUnavailable. Thread-safe.
class DeviceStore final {
 public:
  explicit DeviceStore(pg::Pool& pool) : pool_(pool) {}

  // Told "device:<id>" after every write.
  void OnChange(access::ChangeObserver observer) { observer_ = std::move(observer); }

  Device Create(const NewDevice& device, TimePoint now);
  Device Get(std::string_view id);
  Device Update(const DeviceUpdate& update, TimePoint now);
  // Records `audit`, when given, in the deleting transaction.
  void Delete(std::string_view id, std::string_view if_match, const audit::Entry* audit = nullptr);
  // Replaces the primary (`primary` true) or secondary key.
  Device SetKey(std::string_view id, bool primary, const std::string& key,
                const std::string& new_etag, TimePoint now);
  // Devices with id > after (byte order), at most `limit`.
  std::vector<Device> List(std::string_view after, int limit);

 private:
  pg::Pool& pool_;
  access::ChangeObserver observer_;
};

}  // namespace ferry::registry
