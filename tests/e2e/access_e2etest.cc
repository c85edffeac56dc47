#include <signal.h>

#include <filesystem>
#include <regex>

#include <gtest/gtest.h>

#include "tests/support/ferryd.h"
#include "tests/support/pg.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using testing::BinPath;

testing::RunResult Ctl(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  return testing::Run(BinPath("ferryctl"), args, 60s, env);
}

TEST(Access, AGeneratedOwnerKeyIsPrintedOnceAndWorks) {
  testing::TestDatabase db;
  std::string connection_string;
  {
    testing::FerrydProcess ferryd(db.url(), {"--migrate"}, {{"FERRY_OWNER_KEY", ""}});
    const auto cs = ferryd.process().WaitForLine(
        std::regex("(HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=\\S+)"),
        15s);
    ASSERT_TRUE(cs.has_value()) << ferryd.process().Output();
    connection_string = *cs;
    const auto listed = Ctl({"--endpoint", ferryd.grpc_address(), "devices", "list"},
                            {{"FERRY_CONNECTION_STRING", connection_string}});
    EXPECT_EQ(listed.exit_code, 0) << listed.output;
    const auto token =
        Ctl({"--token-ttl", "60", "token"}, {{"FERRY_CONNECTION_STRING", connection_string}});
    EXPECT_EQ(token.exit_code, 0);
    EXPECT_TRUE(std::regex_search(
        token.output,
        std::regex("^SharedAccessSignature sr=localhost&sig=.+&se=\\d+&skn=iothubowner")))
        << token.output;
    ferryd.process().Signal(SIGTERM);
    EXPECT_EQ(ferryd.process().Wait(15s).value_or(-1), 0);
  }
  // A second start finds the policy and prints nothing; the old string works.
  testing::FerrydProcess again(db.url(), {}, {{"FERRY_OWNER_KEY", ""}});
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::HealthStatus(again.Channel(), "") == "SERVING"; }, 15s));
  EXPECT_EQ(again.process().Output().find("SharedAccessKey="), std::string::npos);
  const auto listed = Ctl({"--endpoint", again.grpc_address(), "devices", "list"},
                          {{"FERRY_CONNECTION_STRING", connection_string}});
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
}

TEST(Access, FerryctlManagesPoliciesAndKeysAndSignsWithAnyConnectionString) {
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {"--migrate"});
  const auto owner = ferryd.CtlEnv();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::HealthStatus(ferryd.Channel(), "") == "SERVING"; }, 15s));
  const auto created =
      Ctl({"--json", "policies", "create", "reader", "--permissions", "RegistryRead"}, owner);
  ASSERT_EQ(created.exit_code, 0) << created.output;
  const std::smatch key = [&] {
    std::smatch m;
    std::regex_search(created.output, m, std::regex("\"primary_key\":\"([^\"]+)\""));
    return m;
  }();
  ASSERT_EQ(key.size(), 2u) << created.output;
  std::map<std::string, std::string> reader = owner;
  reader["FERRY_CONNECTION_STRING"] =
      "HostName=localhost;SharedAccessKeyName=reader;SharedAccessKey=" + key[1].str();
  EXPECT_EQ(Ctl({"devices", "list"}, reader).exit_code, 0);
  const auto refused = Ctl({"devices", "create", "x"}, reader);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.output.find("PermissionDenied"), std::string::npos) << refused.output;
  const auto not_owner = Ctl({"policies", "list"}, reader);
  EXPECT_EQ(not_owner.exit_code, 1);

  const auto listed = Ctl({"policies", "list"}, owner);
  EXPECT_TRUE(std::regex_search(listed.output, std::regex("reader +RegistryRead")))
      << listed.output;
  EXPECT_EQ(Ctl({"policies", "regenerate-key", "reader", "--slot", "primary"}, owner).exit_code, 0);
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return Ctl({"devices", "list"}, reader).exit_code == 1;
      },
      10s));

  ASSERT_EQ(Ctl({"devices", "create", "thermostat-7"}, owner).exit_code, 0);
  const auto cs = Ctl({"devices", "connection-string", "thermostat-7"}, owner);
  ASSERT_EQ(cs.exit_code, 0);
  EXPECT_EQ(cs.output.rfind("HostName=localhost;DeviceId=thermostat-7;SharedAccessKey=", 0), 0u)
      << cs.output;
  std::map<std::string, std::string> device = owner;
  device["FERRY_CONNECTION_STRING"] = cs.output.substr(0, cs.output.find('\n'));
  const auto device_token = Ctl({"token"}, device);
  EXPECT_EQ(
      device_token.output.rfind("SharedAccessSignature sr=localhost%2Fdevices%2Fthermostat-7&", 0),
      0u)
      << device_token.output;
  EXPECT_EQ(Ctl({"devices", "list"}, device).exit_code,
            1);  // a device key grants no registry access
  EXPECT_EQ(
      Ctl({"devices", "regenerate-key", "thermostat-7", "--slot", "secondary"}, owner).exit_code,
      0);
  EXPECT_EQ(Ctl({"policies", "delete", "reader"}, owner).exit_code, 0);
  EXPECT_EQ(Ctl({"policies", "delete", "iothubowner"}, owner).exit_code, 1);
}

TEST(Access, FerryctlManagesRoutesAndTestsThem) {
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {"--migrate"});
  const auto owner = ferryd.CtlEnv();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::HealthStatus(ferryd.Channel(), "") == "SERVING"; }, 15s));
  ASSERT_EQ(
      Ctl({"endpoints", "create", "alerts", "--kafka-topic", "ferry.alerts"}, owner).exit_code, 0);
  const auto created = Ctl({"routes", "create", "hot", "--endpoint", "alerts", "--condition",
                            "AS_NUMBER(temperature) > 30"},
                           owner);
  ASSERT_EQ(created.exit_code, 0) << created.output;
  const auto broken = Ctl({"routes", "create", "broken", "--condition", "temperature >"}, owner);
  EXPECT_EQ(broken.exit_code, 1);
  EXPECT_NE(broken.output.find("position 14"), std::string::npos) << broken.output;
  const auto hot = Ctl({"routes", "test", "--property", "temperature=31"}, owner);
  EXPECT_NE(hot.output.find("endpoints: alerts"), std::string::npos) << hot.output;
  const auto cold = Ctl({"routes", "test", "--property", "temperature=3"}, owner);
  EXPECT_NE(cold.output.find("endpoints: events (fallback)"), std::string::npos) << cold.output;
  const auto one = Ctl({"routes", "test", "--condition", "$body.temp > 30", "--body",
                        "{\"temp\":31}", "--content-type", "application/json"},
                       owner);
  EXPECT_EQ(one.output, "TEST_RESULT_MATCHED\n");
  EXPECT_EQ(Ctl({"endpoints", "delete", "alerts"}, owner).exit_code, 1);  // in use
  EXPECT_EQ(Ctl({"routes", "delete", "hot"}, owner).exit_code, 0);
  EXPECT_EQ(Ctl({"endpoints", "delete", "alerts"}, owner).exit_code, 0);
}

TEST(Access, InsecureModeWarnsAndLetsAnonymousCallsThrough) {
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {"--migrate", "--insecure-no-auth"});
  EXPECT_TRUE(ferryd.process().WaitForLine(std::regex("authentication is OFF"), 10s).has_value());
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::HealthStatus(ferryd.Channel(), "") == "SERVING"; }, 15s));
  const auto created = Ctl({"--endpoint", ferryd.grpc_address(), "devices", "create", "open-door"});
  EXPECT_EQ(created.exit_code, 0) << created.output;
}

TEST(Access, PlaintextOnANonLoopbackAddressIsRefusedUnlessAllowed) {
  testing::TestDatabase db;
  const auto refused = testing::Run(BinPath("ferryd"),
                                    {"--postgres-url", db.url(), "serve", "--grpc-listen",
                                     "0.0.0.0:0", "--metrics-listen", "127.0.0.1:0"},
                                    30s, {{"FERRY_OWNER_KEY", testing::kE2eOwnerKey}});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.output.find("refusing plaintext gRPC on 0.0.0.0:0"), std::string::npos)
      << refused.output;
  testing::FerrydProcess allowed(db.url(), {"--migrate", "--allow-plaintext"});
  EXPECT_EQ(testing::HealthStatus(allowed.Channel(), "liveness"), "SERVING");
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-tls-XXXXXX";
    dir_ = mkdtemp(tmpl);
    MakeCerts("one");
    MakeCerts("two");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void MakeCerts(const std::string& name) {
    const auto r =
        testing::Run(testing::SourcePath("tests/support/make-test-certs.sh"), {dir_, name});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  std::string File(const std::string& name) const { return dir_ + "/" + name; }
  // Puts NAME's server certificate where ferryd reads it, atomically.
  void Install(const std::string& name) {
    for (const std::string ext : {"pem", "key"}) {
      std::filesystem::copy_file(File(name + "-server." + ext), File("live.tmp"),
                                 std::filesystem::copy_options::overwrite_existing);
      std::filesystem::rename(File("live.tmp"), File("live." + ext));
    }
  }
  testing::RunResult Health(const testing::FerrydProcess& f, const std::vector<std::string>& tls) {
    std::vector<std::string> args = {"--endpoint", f.grpc_address(), "--timeout", "3"};
    args.insert(args.end(), tls.begin(), tls.end());
    args.push_back("health");
    return Ctl(args,
               {{"FERRY_CONNECTION_STRING", testing::FerrydProcess::OwnerConnectionString()}});
  }

  std::string dir_;
};

TEST_F(TlsTest, ServesTlsAndReloadsChangedCertificates) {
  Install("one");
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(),
                                {"--migrate", "--tls-cert-file", File("live.pem"), "--tls-key-file",
                                 File("live.key"), "--tls-reload-seconds", "1"});
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return Health(ferryd, {"--tls-ca-file", File("one-ca.pem")}).exit_code == 0;
      },
      15s))
      << Health(ferryd, {"--tls-ca-file", File("one-ca.pem")}).output << ferryd.process().Output();
  EXPECT_EQ(Health(ferryd, {}).exit_code, 3) << "plaintext must not be served alongside TLS";
  EXPECT_EQ(Health(ferryd, {"--tls-ca-file", File("two-ca.pem")}).exit_code, 3);
  const auto listed = Ctl(
      {"--endpoint", ferryd.grpc_address(), "--tls-ca-file", File("one-ca.pem"), "devices", "list"},
      {{"FERRY_CONNECTION_STRING", testing::FerrydProcess::OwnerConnectionString()}});
  EXPECT_EQ(listed.exit_code, 0) << listed.output;

  Install("two");
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return Health(ferryd, {"--tls-ca-file", File("two-ca.pem")}).exit_code == 0;
      },
      20s, 200ms))
      << "the new certificate was not picked up";
}

TEST_F(TlsTest, MutualTlsRequiresAClientCertificateFromTheCa) {
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(
      db.url(), {"--migrate", "--tls-cert-file", File("one-server.pem"), "--tls-key-file",
                 File("one-server.key"), "--tls-client-ca-file", File("one-ca.pem")});
  const std::vector<std::string> trust = {"--tls-ca-file", File("one-ca.pem")};
  std::vector<std::string> with_cert = trust;
  with_cert.insert(with_cert.end(), {"--tls-cert-file", File("one-client.pem"), "--tls-key-file",
                                     File("one-client.key")});
  std::vector<std::string> wrong_cert = trust;
  wrong_cert.insert(wrong_cert.end(), {"--tls-cert-file", File("two-client.pem"), "--tls-key-file",
                                       File("two-client.key")});
  ASSERT_TRUE(testing::WaitFor([&] { return Health(ferryd, with_cert).exit_code == 0; }, 15s))
      << Health(ferryd, with_cert).output << ferryd.process().Output();
  EXPECT_EQ(Health(ferryd, trust).exit_code, 3);
  EXPECT_EQ(Health(ferryd, wrong_cert).exit_code, 3);
}

}  // namespace
}  // namespace ferry
