#include "sluice/admin.h"

#include "control_client.h"
#include "data_dir.h"

namespace sluice {

using control::json;

struct Admin::Impl {
  std::unique_ptr<ControlClient> control;
};

Admin::Admin(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Admin::Admin(Admin&&) noexcept = default;
Admin& Admin::operator=(Admin&&) noexcept = default;
Admin::~Admin() = default;

Result<Admin> Admin::connect(const std::string& data_dir) {
  auto c = ControlClient::connect(DataDir{data_dir}, "sluice-admin");
  if (!c) return c.status();
  auto impl = std::make_unique<Impl>();
  impl->control = std::move(c).value();
  return Admin(std::move(impl));
}

Status Admin::create_topic(const std::string& name, const TopicConfig& config) {
  return impl_->control
      ->request("topic.create", {{"name", name}, {"config", control::to_json(config)}})
      .status();
}

Result<std::vector<std::string>> Admin::list_topics() {
  auto r = impl_->control->request("topic.list", json::object());
  if (!r) return r.status();
  return r->value("topics", std::vector<std::string>{});
}

Result<TopicDescription> Admin::describe_topic(const std::string& name) {
  auto r = impl_->control->request("topic.describe", {{"name", name}});
  if (!r) return r.status();
  return control::topic_description_from(r->value("topic", json::object()));
}

Status Admin::alter_topic(const std::string& name, const TopicConfig& changes,
                          const std::vector<std::string>& fields) {
  json all = control::to_json(changes);
  json some = json::object();
  for (const auto& f : fields) {
    if (!all.contains(f))
      return Status(ErrorCode::kInvalidArgument, "unknown topic setting '" + f + "'");
    some[f] = all[f];
  }
  return impl_->control->request("topic.alter", {{"name", name}, {"config", some}}).status();
}

Status Admin::delete_topic(const std::string& name) {
  return impl_->control->request("topic.delete", {{"name", name}}).status();
}

Result<std::int64_t> Admin::delete_records(const std::string& name, std::int32_t partition,
                                           std::int64_t before) {
  auto r = impl_->control->request("topic.delete_records",
                                   {{"name", name}, {"partition", partition}, {"before", before}});
  if (!r) return r.status();
  return r->value("start", std::int64_t{-1});
}

Result<std::vector<std::string>> Admin::list_groups() {
  auto r = impl_->control->request("group.list", json::object());
  if (!r) return r.status();
  return r->value("groups", std::vector<std::string>{});
}

Result<GroupInfo> Admin::describe_group(const std::string& group) {
  auto r = impl_->control->request("group.describe", {{"group", group}});
  if (!r) return r.status();
  GroupInfo g;
  g.group = group;
  g.state = r->value("state", "");
  g.generation = r->value("generation", 0);
  g.protocol = r->value("protocol", "");
  for (const auto& m : r->value("members", json::array())) {
    GroupMemberInfo mi;
    mi.member_id = m.value("member_id", "");
    mi.client_id = m.value("client_id", "");
    mi.pid = m.value("pid", 0);
    for (const auto& p : m.value("partitions", json::array()))
      mi.partitions.push_back({p.value("topic", ""), p.value("partition", 0)});
    g.members.push_back(std::move(mi));
  }
  for (const auto& o : r->value("offsets", json::array())) {
    GroupOffsetInfo oi;
    oi.partition = {o.value("topic", ""), o.value("partition", 0)};
    oi.committed = o.value("committed", std::int64_t{-1});
    oi.end_offset = o.value("end_offset", std::int64_t{0});
    oi.lag = o.value("lag", std::int64_t{0});
    g.offsets.push_back(oi);
  }
  return g;
}

Status Admin::reset_offsets(const std::string& group, const std::string& topic, OffsetReset to) {
  const char* kind = "earliest";
  switch (to.kind) {
    case OffsetReset::Kind::kEarliest:
      kind = "earliest";
      break;
    case OffsetReset::Kind::kLatest:
      kind = "latest";
      break;
    case OffsetReset::Kind::kOffset:
      kind = "offset";
      break;
    case OffsetReset::Kind::kTimestamp:
      kind = "timestamp";
      break;
  }
  return impl_->control
      ->request("group.reset",
                {{"group", group}, {"topic", topic}, {"to", kind}, {"value", to.value}})
      .status();
}

Status Admin::delete_group(const std::string& group) {
  return impl_->control->request("group.delete", {{"group", group}}).status();
}

Result<BrokerStatus> Admin::status() {
  auto r = impl_->control->request("status", json::object());
  if (!r) return r.status();
  BrokerStatus s;
  s.pid = r->value("pid", 0);
  s.uptime_ms = r->value("uptime_ms", std::int64_t{0});
  s.topics = r->value("topics", 0);
  s.partitions = r->value("partitions", 0);
  s.bytes = r->value("bytes", std::uint64_t{0});
  s.records_per_second = r->value("records_per_second", 0.0);
  s.data_dir = r->value("data_dir", "");
  return s;
}

}  // namespace sluice
