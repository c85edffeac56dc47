#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include "core/auth/credentials.h"
#include "services/auth/policy_store.h"

namespace ferry::pg {
class Listener;
}

namespace ferry::access {

// Keys, policies and device status held in memory so that authorizing a call
// costs no database round trip. Every change to a device or policy row is
// announced on NOTIFY channel ferry_auth (migration 0002) and drops the cached
// copy on every replica; a lost or re-established LISTEN connection drops
// everything. Device entries also expire after `ttl` as a safety net. Absent
// devices are cached too (an INSERT's NOTIFY drops that). Thread-safe.
// Metrics: ferry_auth_cache_lookups_total{kind,result}.
class CredentialCache final : public auth::CredentialSource {
 public:
  CredentialCache(CredentialStore& store, prometheus::Registry& registry,
                  std::chrono::seconds ttl = std::chrono::seconds(60),
                  std::size_t max_devices = 200000);

  // Wires NOTIFY and resync; call before the listener starts.
  void Attach(pg::Listener& listener);

  std::optional<auth::PolicyCredentials> Policy(const std::string& name) override;
  std::optional<auth::DeviceCredentials> Device(const std::string& device_id) override;

  // `subject` is a NOTIFY payload: "device:<id>" or "policy:<name>".
  void Invalidate(const std::string& subject);
  void InvalidateAll();

 private:
  struct DeviceEntry {
    std::optional<auth::DeviceCredentials> credentials;
    std::chrono::steady_clock::time_point loaded;
  };

  CredentialStore& store_;
  std::chrono::seconds ttl_;
  std::size_t max_devices_;
  prometheus::Family<prometheus::Counter>& lookups_;

  std::mutex mutex_;
  // Bumped by every invalidation; a load that raced one is not cached.
  std::uint64_t epoch_ = 0;
  std::optional<std::map<std::string, auth::PolicyCredentials>> policies_;
  std::unordered_map<std::string, DeviceEntry> devices_;
};

}  // namespace ferry::access
