// The shape of a local `sluice perf` run: how many partitions, how the consumers form groups,
// and which consumer reads which partitions.
//
// Consumers are split into groups of consecutive ids (the first consumers % groups groups get
// one member more). Within a group the partitions are dealt by Kafka's RangeAssignor, the
// group coordinator's own (core/src/assignors.h), over members named in consumer order: the
// assignment a real group of these members would settle on, computed once, before the run.
// There is no broker, no rebalance and no commit: it is a static assignment over raw partition
// logs. Members beyond the partition count get no partition and stay idle, as in Kafka.
//
// Thread-safety: a plain value, built once and then only read.
#pragma once

#include <string>
#include <vector>

namespace sluice::tools {

struct PerfTopology {
  struct Group {
    int first = 0;    // its first consumer
    int members = 0;  // consumers first .. first + members - 1
  };

  int partitions = 1;
  std::vector<Group> groups;
  std::vector<int> group_of;                          // consumer -> its group
  std::vector<std::vector<int>> consumer_partitions;  // consumer -> partitions, ascending
  std::vector<std::vector<int>> partition_readers;    // partition -> its reader in each group

  // groups == 0: every consumer is a group of its own (each reads every record). An invalid
  // shape gives a topology that is not valid() and says why in *error.
  static PerfTopology make(int partitions, int consumers, int groups, std::string* error);

  bool valid() const { return partitions > 0; }
  // The consumer that applies retention to partition p: its reader in group 0.
  int retention_owner(int p) const { return partition_readers[static_cast<std::size_t>(p)][0]; }
  // Consumer c's partition list as text: "0-1", "2,5", "-" for none.
  std::string describe_partitions(int c) const;
};

}  // namespace sluice::tools
