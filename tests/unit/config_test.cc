#include "ferryd/config.h"

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

namespace ferry {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const char* v : {"FERRY_POSTGRES_URL", "FERRY_POSTGRES_URL_FILE", "FERRY_GRPC_LISTEN",
                          "FERRY_ROLES", "FERRY_PG_POOL_SIZE", "FERRY_OWNER_KEY"}) {
      unsetenv(v);
    }
  }

  FerrydConfig Parse(std::vector<std::string> args, std::string* described = nullptr) {
    CLI::App app;
    FerrydConfig config;
    AddCommonOptions(app, config);
    CLI::App* serve = app.add_subcommand("serve");
    AddServeOptions(*serve, config);
    std::vector<std::string> argv_storage = {"ferryd"};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_storage) argv.push_back(a.data());
    app.parse(static_cast<int>(argv.size()), argv.data());
    FinishConfig(config, serve->parsed());
    if (described != nullptr) *described = DescribeConfig({&app, serve}, false);
    return config;
  }
};

TEST_F(ConfigTest, DefaultsMatchTheDocs) {
  const FerrydConfig c = Parse({"--postgres-url", "postgresql:///x", "serve"});
  EXPECT_EQ(c.grpc_listen, "127.0.0.1:50051");
  EXPECT_EQ(c.metrics_listen, "127.0.0.1:9464");
  EXPECT_TRUE(c.grpc_reflection);
  EXPECT_EQ(c.role_set, (std::set<std::string>{"api", "d2c", "sweeper"}));
  EXPECT_EQ(c.d2c_topic, "ferry.d2c");
  EXPECT_EQ(c.d2c_group, "ferry-d2c");
  EXPECT_EQ(c.retention_days, 1);
}

TEST_F(ConfigTest, EnvironmentTwinsApply) {
  setenv("FERRY_POSTGRES_URL", "postgresql:///from-env", 1);
  setenv("FERRY_GRPC_LISTEN", "0.0.0.0:6000", 1);
  const FerrydConfig c = Parse({"serve"});
  EXPECT_EQ(c.postgres_url, "postgresql:///from-env");
  EXPECT_EQ(c.grpc_listen, "0.0.0.0:6000");
}

TEST_F(ConfigTest, SecretFileTwinIsRead) {
  const std::string path = ::testing::TempDir() + "/pg-url";
  std::ofstream(path) << "postgresql:///from-file\n";
  setenv("FERRY_POSTGRES_URL_FILE", path.c_str(), 1);
  EXPECT_EQ(Parse({"serve"}).postgres_url, "postgresql:///from-file");
}

TEST_F(ConfigTest, MissingUrlUnknownRoleAndBadRangesAreRefused) {
  EXPECT_THROW(Parse({"serve"}), std::invalid_argument);
  EXPECT_THROW(Parse({"--postgres-url", "x", "serve", "--roles", "api,bogus"}),
               std::invalid_argument);
  setenv("FERRY_PG_POOL_SIZE", "0", 1);
  EXPECT_THROW(Parse({"--postgres-url", "x", "serve"}), std::invalid_argument);
}

TEST_F(ConfigTest, PrintShowsEveryValueAndItsSourceWithSecretsRedacted) {
  setenv("FERRY_GRPC_LISTEN", "0.0.0.0:6000", 1);
  setenv("FERRY_OWNER_KEY", "c2VjcmV0LXNlY3JldC1zZWNyZXQ=", 1);
  std::string out;
  Parse({"--postgres-url", "postgresql://ferry:hunter2@db:5432/ferry?sslmode=require", "serve",
         "--roles", "api", "--kafka-property", "sasl.password=topsecret", "--kafka-property",
         "linger.ms=5"},
        &out);
  EXPECT_NE(
      out.find("postgres-url = \"postgresql://ferry:***@db:5432/ferry?sslmode=require\"  # flag"),
      std::string::npos)
      << out;
  EXPECT_NE(out.find("grpc-listen = \"0.0.0.0:6000\"  # FERRY_GRPC_LISTEN"), std::string::npos)
      << out;
  EXPECT_NE(out.find("roles = \"api\"  # flag"), std::string::npos) << out;
  EXPECT_NE(out.find("owner-key = \"***\"  # FERRY_OWNER_KEY"), std::string::npos) << out;
  EXPECT_NE(out.find("kafka-property = \"sasl.password=***;linger.ms=5\"  # flag"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("c2d-max-queue-depth = \"50\"  # default"), std::string::npos) << out;
  EXPECT_NE(out.find("insecure-no-auth = \"false\"  # default"), std::string::npos) << out;
  for (const char* secret : {"hunter2", "c2VjcmV0", "topsecret"}) {
    EXPECT_EQ(out.find(secret), std::string::npos) << secret << " leaked:\n" << out;
  }
}

TEST(RedactPostgresUrl, HidesPasswordsInEveryForm) {
  EXPECT_EQ(RedactPostgresUrl("postgresql://u:p%40ss@h/db"), "postgresql://u:***@h/db");
  EXPECT_EQ(RedactPostgresUrl("postgresql://u@h/db"), "postgresql://u@h/db");
  EXPECT_EQ(RedactPostgresUrl("postgresql:///db?host=/tmp&password=x&user=u"),
            "postgresql:///db?host=/tmp&password=***&user=u");
  EXPECT_EQ(RedactPostgresUrl("host=db password=secret user=u"), "host=db password=*** user=u");
  EXPECT_EQ(RedactPostgresUrl("host=db mypassword=keep"), "host=db mypassword=keep");
}

}  // namespace
}  // namespace ferry
