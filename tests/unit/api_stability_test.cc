// ferry.v1 stays additive: the API as built is compared with the checked-in
// baseline (proto/ferry/v1/api-baseline.txtpb, written by
// scripts/api-baseline). Removing, renaming, renumbering or retyping a
// field, enum value or method breaks clients and fails here; adding one is
// fine once the baseline is regenerated.
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

// Linked in so that the generated pool holds every ferry.v1 file.
#include "ferry/v1/access.pb.h"
#include "ferry/v1/audit.grpc.pb.h"
#include "ferry/v1/c2d.grpc.pb.h"
#include "ferry/v1/device_messaging.grpc.pb.h"
#include "ferry/v1/events.grpc.pb.h"
#include "ferry/v1/feedback.grpc.pb.h"
#include "ferry/v1/registry.grpc.pb.h"
#include "ferry/v1/routing.grpc.pb.h"

namespace ferry {
namespace {

namespace pb = google::protobuf;

// ---- The checker -----------------------------------------------------------

using Problems = std::vector<std::string>;

std::string Label(const pb::FieldDescriptorProto& f) {
  return fmt::format("{} {}{}{}", pb::FieldDescriptorProto::Label_Name(f.label()),
                     pb::FieldDescriptorProto::Type_Name(f.type()),
                     f.type_name().empty() ? "" : " ", f.type_name());
}

bool Reserved(const pb::DescriptorProto& m, int number) {
  for (const auto& r : m.reserved_range()) {
    if (number >= r.start() && number < r.end()) return true;  // end is exclusive
  }
  return false;
}

void CompareMessage(const std::string& scope, const pb::DescriptorProto& before,
                    const pb::DescriptorProto& after, Problems& problems);

void CompareEnum(const std::string& scope, const pb::EnumDescriptorProto& before,
                 const pb::EnumDescriptorProto& after, Problems& problems) {
  std::map<std::string, int> values;
  for (const auto& v : after.value()) values[v.name()] = v.number();
  for (const auto& v : before.value()) {
    const auto it = values.find(v.name());
    if (it == values.end()) {
      problems.push_back(
          fmt::format("enum value {}.{} ({}) was removed or renamed", scope, v.name(), v.number()));
    } else if (it->second != v.number()) {
      problems.push_back(fmt::format("enum value {}.{} was renumbered {} -> {}", scope, v.name(),
                                     v.number(), it->second));
    }
  }
}

template <typename Container>
const auto* FindByName(const Container& items, const std::string& name) {
  for (const auto& item : items) {
    if (item.name() == name) return &item;
  }
  return static_cast<decltype(&*items.begin())>(nullptr);
}

void CompareMessage(const std::string& scope, const pb::DescriptorProto& before,
                    const pb::DescriptorProto& after, Problems& problems) {
  std::map<int, const pb::FieldDescriptorProto*> fields;
  for (const auto& f : after.field()) fields[f.number()] = &f;
  for (const auto& f : before.field()) {
    const std::string where = fmt::format("field {}.{} = {}", scope, f.name(), f.number());
    const auto it = fields.find(f.number());
    if (it == fields.end()) {
      // Removing a field is allowed only with its number reserved, so that
      // it is never reused with another meaning.
      if (!Reserved(after, f.number()))
        problems.push_back(where + " was removed (or renumbered) without reserving it");
      continue;
    }
    const pb::FieldDescriptorProto& g = *it->second;
    if (g.name() != f.name())
      problems.push_back(fmt::format("{} was renamed to {}", where, g.name()));
    if (g.json_name() != f.json_name())
      problems.push_back(fmt::format("{} changed its JSON name", where));
    if (Label(g) != Label(f))
      problems.push_back(fmt::format("{} changed type: {} -> {}", where, Label(f), Label(g)));
    if (g.proto3_optional() != f.proto3_optional())
      problems.push_back(where + " changed presence (optional)");
    if (g.has_oneof_index() != f.has_oneof_index())
      problems.push_back(where + " moved into or out of a oneof");
  }
  for (const auto& e : before.enum_type()) {
    const auto* now = FindByName(after.enum_type(), e.name());
    if (now == nullptr) {
      problems.push_back(fmt::format("enum {}.{} was removed", scope, e.name()));
    } else {
      CompareEnum(scope + "." + e.name(), e, *now, problems);
    }
  }
  for (const auto& n : before.nested_type()) {
    const auto* now = FindByName(after.nested_type(), n.name());
    if (now == nullptr) {
      problems.push_back(fmt::format("message {}.{} was removed", scope, n.name()));
    } else {
      CompareMessage(scope + "." + n.name(), n, *now, problems);
    }
  }
}

// What in `after` breaks a client built against `before`.
Problems BreakingChanges(const pb::FileDescriptorSet& before, const pb::FileDescriptorSet& after) {
  Problems problems;
  for (const auto& file : before.file()) {
    const auto* now = FindByName(after.file(), file.name());
    if (now == nullptr) {
      problems.push_back("file " + file.name() + " was removed");
      continue;
    }
    if (now->package() != file.package())
      problems.push_back("file " + file.name() + " changed package");
    for (const auto& m : file.message_type()) {
      const auto* m2 = FindByName(now->message_type(), m.name());
      if (m2 == nullptr) {
        problems.push_back(fmt::format("message {}.{} was removed", file.package(), m.name()));
      } else {
        CompareMessage(file.package() + "." + m.name(), m, *m2, problems);
      }
    }
    for (const auto& e : file.enum_type()) {
      const auto* e2 = FindByName(now->enum_type(), e.name());
      if (e2 == nullptr) {
        problems.push_back(fmt::format("enum {}.{} was removed", file.package(), e.name()));
      } else {
        CompareEnum(file.package() + "." + e.name(), e, *e2, problems);
      }
    }
    for (const auto& s : file.service()) {
      const auto* s2 = FindByName(now->service(), s.name());
      const std::string service = file.package() + "." + s.name();
      if (s2 == nullptr) {
        problems.push_back("service " + service + " was removed");
        continue;
      }
      for (const auto& m : s.method()) {
        const auto* m2 = FindByName(s2->method(), m.name());
        const std::string method = service + "/" + m.name();
        if (m2 == nullptr) {
          problems.push_back("method " + method + " was removed or renamed");
          continue;
        }
        if (m2->input_type() != m.input_type() || m2->output_type() != m.output_type()) {
          problems.push_back(
              fmt::format("method {} changed its types: ({}) -> ({}) became ({}) -> ({})", method,
                          m.input_type(), m.output_type(), m2->input_type(), m2->output_type()));
        }
        if (m2->client_streaming() != m.client_streaming() ||
            m2->server_streaming() != m.server_streaming()) {
          problems.push_back("method " + method + " changed streaming");
        }
      }
    }
  }
  return problems;
}

// ---- The baseline and the build ---------------------------------------------

pb::FileDescriptorSet Baseline() {
  std::ifstream in(std::string(FERRY_SOURCE_DIR) + "/proto/ferry/v1/api-baseline.txtpb");
  std::stringstream text;
  text << in.rdbuf();
  pb::FileDescriptorSet set;
  EXPECT_TRUE(pb::TextFormat::ParseFromString(text.str(), &set))
      << "cannot read proto/ferry/v1/api-baseline.txtpb";
  return set;
}

// The ferry.v1 files compiled into this binary (a message of each is named
// so that the linker keeps its descriptors).
pb::FileDescriptorSet Built() {
  pb::FileDescriptorSet set;
  for (const pb::FileDescriptor* file :
       {v1::Policy::descriptor()->file(), v1::SendC2dRequest::descriptor()->file(),
        v1::ReceiveRequest::descriptor()->file(), v1::StoredEvent::descriptor()->file(),
        v1::FeedbackRecord::descriptor()->file(), v1::SymmetricKey::descriptor()->file(),
        v1::Enrichment::descriptor()->file(), v1::AuditRecord::descriptor()->file()}) {
    pb::FileDescriptorProto* proto = set.add_file();
    file->CopyTo(proto);
    file->CopyJsonNameTo(proto);
  }
  return set;
}

std::string Joined(const Problems& problems) {
  std::string out;
  for (const auto& p : problems) out += "  " + p + "\n";
  return out;
}

TEST(ApiStability, TheBuiltApiBreaksNothingInTheBaseline) {
  const auto baseline = Baseline();
  ASSERT_GE(baseline.file_size(), 8);
  const Problems problems = BreakingChanges(baseline, Built());
  EXPECT_TRUE(problems.empty()) << "ferry.v1 must stay additive; breaking changes against "
                                   "proto/ferry/v1/api-baseline.txtpb:\n"
                                << Joined(problems);
}

TEST(ApiStability, TheBaselineIsCurrent) {
  // An additive change must be recorded too, so the next change is checked
  // against it.
  const auto baseline = Baseline();
  const auto built = Built();
  for (const auto& file : built.file()) {
    const auto* recorded = FindByName(baseline.file(), file.name());
    ASSERT_NE(recorded, nullptr) << file.name()
                                 << " is not in the baseline: run scripts/api-baseline";
    EXPECT_TRUE(pb::util::MessageDifferencer::Equals(*recorded, file))
        << file.name()
        << " differs from the baseline: if the change is additive, run scripts/api-baseline";
  }
}

// The checker itself must be able to fail: each kind of break, made to a
// copy of the baseline, is reported; additions are not.
class ApiCheckerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    before_ = Baseline();
    after_ = before_;
  }
  pb::DescriptorProto* Message(const std::string& name) {
    for (auto& f : *after_.mutable_file()) {
      for (auto& m : *f.mutable_message_type()) {
        if (m.name() == name) return &m;
      }
    }
    ADD_FAILURE() << "no message " << name;
    return nullptr;
  }
  pb::MethodDescriptorProto* Method(const std::string& name) {
    for (auto& f : *after_.mutable_file()) {
      for (auto& s : *f.mutable_service()) {
        for (auto& m : *s.mutable_method()) {
          if (m.name() == name) return &m;
        }
      }
    }
    ADD_FAILURE() << "no method " << name;
    return nullptr;
  }
  Problems Check() { return BreakingChanges(before_, after_); }

  pb::FileDescriptorSet before_;
  pb::FileDescriptorSet after_;
};

TEST_F(ApiCheckerTest, AnUnchangedApiHasNoProblems) {
  EXPECT_TRUE(Check().empty()) << Joined(Check());
}

TEST_F(ApiCheckerTest, AddingFieldsMessagesAndMethodsIsAllowed) {
  auto* f = Message("Policy")->add_field();
  f->set_name("added");
  f->set_number(99);
  f->set_type(pb::FieldDescriptorProto::TYPE_STRING);
  after_.mutable_file(0)->add_message_type()->set_name("BrandNew");
  auto* m = after_.mutable_file(0)->mutable_service(0)->add_method();
  m->set_name("BrandNewMethod");
  EXPECT_TRUE(Check().empty()) << Joined(Check());
}

TEST_F(ApiCheckerTest, RemovedRenumberedRenamedOrRetypedFieldsAreBreaking) {
  Message("Policy")->mutable_field()->RemoveLast();
  Problems p = Check();
  ASSERT_EQ(p.size(), 1u) << Joined(p);
  EXPECT_NE(p[0].find("removed"), std::string::npos) << p[0];

  SetUp();
  Message("Policy")->mutable_field(0)->set_number(77);
  EXPECT_FALSE(Check().empty());

  SetUp();
  Message("Policy")->mutable_field(1)->set_name("renamed_key");
  p = Check();
  ASSERT_FALSE(p.empty());
  EXPECT_NE(p[0].find("renamed"), std::string::npos) << p[0];

  SetUp();
  Message("Policy")->mutable_field(0)->set_type(pb::FieldDescriptorProto::TYPE_BYTES);
  p = Check();
  ASSERT_FALSE(p.empty());
  EXPECT_NE(p[0].find("changed type"), std::string::npos) << p[0];

  SetUp();
  Message("Policy")->mutable_field(0)->set_label(pb::FieldDescriptorProto::LABEL_REPEATED);
  EXPECT_FALSE(Check().empty());
}

TEST_F(ApiCheckerTest, ARemovedFieldWithItsNumberReservedIsAllowed) {
  auto* m = Message("Policy");
  const int number = m->field(m->field_size() - 1).number();
  m->mutable_field()->RemoveLast();
  auto* r = m->add_reserved_range();
  r->set_start(number);
  r->set_end(number + 1);
  EXPECT_TRUE(Check().empty()) << Joined(Check());
}

TEST_F(ApiCheckerTest, RemovedOrChangedMethodsAreBreaking) {
  auto* m = Method("Send");
  m->set_name("SendRenamed");
  EXPECT_FALSE(Check().empty());

  SetUp();
  Method("Send")->set_server_streaming(true);
  EXPECT_FALSE(Check().empty());

  SetUp();
  Method("Send")->set_output_type(".ferry.v1.Policy");
  EXPECT_FALSE(Check().empty());
}

TEST_F(ApiCheckerTest, RemovedMessagesAndEnumValuesAreBreaking) {
  for (auto& f : *after_.mutable_file()) {
    if (f.enum_type_size() > 0) {
      f.mutable_enum_type(0)->mutable_value()->RemoveLast();
      break;
    }
  }
  EXPECT_FALSE(Check().empty());

  SetUp();
  after_.mutable_file(0)->mutable_message_type()->RemoveLast();
  EXPECT_FALSE(Check().empty());
}

}  // namespace
}  // namespace ferry
