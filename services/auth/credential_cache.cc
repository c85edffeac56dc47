#include "services/auth/credential_cache.h"

#include "core/metrics.h"
#include "core/pg/listener.h"

namespace ferry::access {

CredentialCache::CredentialCache(CredentialStore& store, prometheus::Registry& registry,
                                 std::chrono::seconds ttl, std::size_t max_devices)
    : store_(store),
      ttl_(ttl),
      max_devices_(max_devices),
      lookups_(metrics::CounterFamily(
          registry, "ferry_auth_cache_lookups_total",
          "Credential cache lookups by kind (device, policy) and result (hit, miss).")) {}

void CredentialCache::Attach(pg::Listener& listener) {
  listener.Subscribe("ferry_auth", [this](const std::string& payload) { Invalidate(payload); });
  listener.OnResync([this] { InvalidateAll(); });
}

std::optional<auth::PolicyCredentials> CredentialCache::Policy(const std::string& name) {
  std::uint64_t epoch;
  {
    std::lock_guard lock(mutex_);
    if (policies_) {
      lookups_.Add({{"kind", "policy"}, {"result", "hit"}}).Increment();
      const auto it = policies_->find(name);
      if (it == policies_->end()) return std::nullopt;
      return it->second;
    }
    epoch = epoch_;
  }
  lookups_.Add({{"kind", "policy"}, {"result", "miss"}}).Increment();
  std::map<std::string, auth::PolicyCredentials> loaded;
  for (auto& p : store_.LoadPolicies()) loaded.emplace(p.name, std::move(p));
  std::optional<auth::PolicyCredentials> result;
  if (const auto it = loaded.find(name); it != loaded.end()) result = it->second;
  std::lock_guard lock(mutex_);
  if (epoch == epoch_) policies_ = std::move(loaded);
  return result;
}

std::optional<auth::DeviceCredentials> CredentialCache::Device(const std::string& device_id) {
  const auto now = std::chrono::steady_clock::now();
  std::uint64_t epoch;
  {
    std::lock_guard lock(mutex_);
    const auto it = devices_.find(device_id);
    if (it != devices_.end() && now - it->second.loaded < ttl_) {
      lookups_.Add({{"kind", "device"}, {"result", "hit"}}).Increment();
      return it->second.credentials;
    }
    epoch = epoch_;
  }
  lookups_.Add({{"kind", "device"}, {"result", "miss"}}).Increment();
  auto loaded = store_.LoadDevice(device_id);
  std::lock_guard lock(mutex_);
  if (epoch == epoch_) {
    if (devices_.size() >= max_devices_) devices_.clear();
    devices_[device_id] = DeviceEntry{loaded, now};
  }
  return loaded;
}

void CredentialCache::Invalidate(const std::string& subject) {
  std::lock_guard lock(mutex_);
  ++epoch_;
  if (subject.rfind("device:", 0) == 0) {
    devices_.erase(subject.substr(7));
  } else if (subject.rfind("policy:", 0) == 0) {
    policies_.reset();
  } else {
    policies_.reset();
    devices_.clear();
  }
}

void CredentialCache::InvalidateAll() {
  std::lock_guard lock(mutex_);
  ++epoch_;
  policies_.reset();
  devices_.clear();
}

}  // namespace ferry::access
