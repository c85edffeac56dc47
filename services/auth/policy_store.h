#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/audit/audit.h"
#include "core/auth/credentials.h"
#include "core/clock.h"
#include "services/auth/change_observer.h"

namespace ferry::pg {
class Pool;
}

namespace ferry::access {

inline constexpr std::size_t kMaxPolicies = 16;
inline constexpr std::size_t kMaxServiceConnectPolicies = 10;
inline constexpr char kOwnerPolicyName[] = "iothubowner";

struct StoredPolicy {
  auth::PolicyCredentials credentials;
  TimePoint created_at;
  TimePoint updated_at;
};

enum class KeySlot { kPrimary, kSecondary };

// Table shared_access_policies. Limits are enforced under a table lock, so
// they hold under any concurrency: at most 16 policies, at most 10 with
// ServiceConnect, and at least one holding all four permissions. Throws
// ferry::Error: kPolicyNotFound, kPolicyAlreadyExists, kPolicyLimitExceeded,
// kServiceUnavailable. Inputs are validated by the caller. Thread-safe.
class PolicyStore final {
 public:
  explicit PolicyStore(pg::Pool& pool) : pool_(pool) {}

  // Told "policy:<name>" after every write.
  void OnChange(ChangeObserver observer) { observer_ = std::move(observer); }

  // The writes record `audit`, when given, in their own transaction.
  StoredPolicy Create(const auth::PolicyCredentials& policy, TimePoint now,
                      const audit::Entry* audit = nullptr);
  StoredPolicy Get(const std::string& name);
  std::vector<StoredPolicy> List();
  // Replaces permissions; keys replaced only when given.
  StoredPolicy Update(const std::string& name, const auth::PermissionSet& permissions,
                      const std::optional<std::string>& primary_key,
                      const std::optional<std::string>& secondary_key, TimePoint now,
                      const audit::Entry* audit = nullptr);
  void Delete(const std::string& name, const audit::Entry* audit = nullptr);
  StoredPolicy SetKey(const std::string& name, KeySlot slot, const std::string& key, TimePoint now,
                      const audit::Entry* audit = nullptr);

  // First start: creates `name` with all four permissions and `key` (both
  // slots get fresh keys when `key` is empty, the secondary always does)
  // unless some policy exists already. Returns the created policy, or
  // nullopt if there was one (another replica may have won the race).
  std::optional<StoredPolicy> EnsureOwner(const std::string& name, const std::string& key,
                                          const std::string& secondary_key, TimePoint now);

 private:
  pg::Pool& pool_;
  ChangeObserver observer_;
};

// Reads for the credential cache.
class CredentialStore final {
 public:
  explicit CredentialStore(pg::Pool& pool) : pool_(pool) {}
  std::vector<auth::PolicyCredentials> LoadPolicies();
  std::optional<auth::DeviceCredentials> LoadDevice(const std::string& device_id);

 private:
  pg::Pool& pool_;
};

}  // namespace ferry::access
