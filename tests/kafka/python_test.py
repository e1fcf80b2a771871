#!/usr/bin/python3
"""kafka-python (Debian's python3-kafka 2.0.2, a pure-Python client that shares no code with
librdkafka) against sluiced's Kafka gateway: a second, independent implementation of the
protocol's client side.

  /usr/bin/python3 python_test.py BOOTSTRAP TOPIC

TOPIC must exist with 3 partitions (with_sluiced.sh --topic TOPIC:3). Checks, in order:
  1. metadata: the topic and its 3 partitions;
  2. 300 records with keys, headers and given timestamps, acks=all, 100 to each partition:
     offsets 0..99 in each, in send order; then 30 gzip-compressed ones;
  3. a consumer in a group reads all 330 from the earliest offset with the same keys, values,
     headers and timestamps, and commits;
  4. ListOffsets by timestamp (offsets_for_times) finds each partition's first record at or
     after a given time;
  5. a new member of the same group, after 30 more records, reads exactly those 30: it resumes
     from the committed offsets, nothing is read twice;
  6. the admin client (ListGroups, DescribeGroups, DeleteGroups) lists the group, describes it
     Empty once its members have left, and deletes it with its committed offsets;
  7. the admin client grows the topic to 4 partitions (CreatePartitions); a record sent to the
     new partition is its offset 0;
  8. the admin client sets the topic's retention.ms (AlterConfigs) and reads it back
     (DescribeConfigs).
Exits 0 on success; prints what differed and exits 1 otherwise.
"""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions

PARTITIONS = 3
PER_PARTITION = 100


def fail(msg):
    print("python_test: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def expect(cond, msg):
    if not cond:
        fail(msg)


def consume(bootstrap, topic, group, want, timeout_s=20):
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=1000)
    got = []
    deadline = time.time() + timeout_s
    while len(got) < want and time.time() < deadline:
        for m in c:
            got.append(m)
            if len(got) >= want:
                break
    # Anything more within a second would be a record read twice.
    extra = c.poll(timeout_ms=1000)
    for msgs in extra.values():
        got.extend(msgs)
    c.commit()
    committed = {tp.partition: c.committed(tp) for tp in c.assignment()}
    c.close()
    return got, committed


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    bootstrap, topic = sys.argv[1], sys.argv[2]
    base_ts = int(time.time() * 1000) - 60_000  # ms; a minute ago, one ms apart

    # 1. Metadata.
    probe = KafkaConsumer(bootstrap_servers=bootstrap)
    parts = probe.partitions_for_topic(topic)
    expect(parts == set(range(PARTITIONS)), "metadata: partitions of %s are %r" % (topic, parts))
    probe.close()

    # 2. Produce.
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    sent = {}
    futures = []
    for i in range(PARTITIONS * PER_PARTITION):
        part = i % PARTITIONS
        key, value = b"k%d" % i, b"value-%d" % i
        headers = [("n", b"%d" % i), ("src", b"kafka-python")]
        futures.append((i, part, p.send(topic, key=key, value=value, headers=headers,
                                        partition=part, timestamp_ms=base_ts + i)))
        sent[(part, i // PARTITIONS)] = (key, value, headers, base_ts + i)
    p.flush()
    for i, part, f in futures:
        md = f.get(timeout=10)
        expect(md.partition == part and md.offset == i // PARTITIONS,
               "record %d acknowledged at %d/%d, expected %d/%d"
               % (i, md.partition, md.offset, part, i // PARTITIONS))
    p.close()
    pz = KafkaProducer(bootstrap_servers=bootstrap, acks=1, compression_type="gzip", linger_ms=5)
    zf = []
    for j in range(30):
        part = j % PARTITIONS
        key, value = b"z%d" % j, b"gzip-%d-" % j + b"x" * 200
        zf.append((part, pz.send(topic, key=key, value=value, partition=part,
                                 timestamp_ms=base_ts + 1000 + j)))
        sent[(part, PER_PARTITION + j // PARTITIONS)] = (key, value, [], base_ts + 1000 + j)
    pz.flush()
    for part, f in zf:
        md = f.get(timeout=10)
        expect(md.partition == part, "gzip record acknowledged on partition %d" % md.partition)
    pz.close()
    total = len(sent)

    # 3. Consume in a group, compare, commit.
    got, committed = consume(bootstrap, topic, "py-group", total)
    expect(len(got) == total, "group read %d records, expected %d" % (len(got), total))
    seen = set()
    for m in got:
        k = (m.partition, m.offset)
        expect(k not in seen, "record %d/%d read twice" % k)
        seen.add(k)
        expect(k in sent, "record %d/%d was never sent" % k)
        key, value, headers, ts = sent[k]
        expect(m.key == key and m.value == value,
               "record %d/%d: key/value %r/%r, expected %r/%r" % (k + (m.key, m.value, key, value)))
        expect(list(m.headers) == headers,
               "record %d/%d: headers %r, expected %r" % (k + (m.headers, headers)))
        expect(m.timestamp == ts, "record %d/%d: timestamp %d, expected %d" % (k + (m.timestamp, ts)))
    per_part = total // PARTITIONS
    expect(committed == {q: per_part for q in range(PARTITIONS)},
           "committed offsets %r, expected %d in each partition" % (committed, per_part))

    # 4. Offsets by timestamp: base_ts + 150 is record 150's (partition 0, offset 50), so each
    # partition's first record at or after it is its offset 50.
    probe = KafkaConsumer(bootstrap_servers=bootstrap)
    found = probe.offsets_for_times({TopicPartition(topic, q): base_ts + 150
                                     for q in range(PARTITIONS)})
    for tp, ot in found.items():
        expect(ot is not None and ot.offset == 50,
               "offsets_for_times(%d) on partition %d: %r, expected offset 50"
               % (base_ts + 150, tp.partition, ot))
    probe.close()

    # 5. A new member resumes from the committed offsets.
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    later = {}
    for j in range(30):
        part = j % PARTITIONS
        md = p.send(topic, key=b"later%d" % j, value=b"after-commit-%d" % j,
                    partition=part).get(timeout=10)
        later[(md.partition, md.offset)] = b"after-commit-%d" % j
    p.close()
    got, committed = consume(bootstrap, topic, "py-group", len(later))
    keys = [(m.partition, m.offset) for m in got]
    expect(sorted(keys) == sorted(later),
           "resumed member read %d records %r, expected exactly the %d sent after the commit"
           % (len(keys), sorted(keys)[:10], len(later)))
    for m in got:
        expect(m.value == later[(m.partition, m.offset)], "resumed record %d/%d differs"
               % (m.partition, m.offset))

    # 6. The group admin APIs.
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    groups = dict(admin.list_consumer_groups())
    expect(groups.get("py-group") == "consumer",
           "list_consumer_groups: %r, expected py-group of protocol type consumer" % groups)
    [described] = admin.describe_consumer_groups(["py-group"])
    expect(described.state == "Empty" and not described.members,
           "describe_consumer_groups: %r, expected py-group Empty without members" % (described,))
    deleted = dict(admin.delete_consumer_groups(["py-group"]))
    expect(deleted["py-group"].__name__ == "NoError", "delete_consumer_groups: %r" % deleted)
    left = admin.list_consumer_group_offsets("py-group")
    expect(not left, "offsets of the deleted group: %r" % left)

    # 7. Growing the topic.
    admin.create_partitions({topic: NewPartitions(total_count=PARTITIONS + 1)})

    # 8. Topic configs.
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                        configs={"retention.ms": "86400000"})])
    [described] = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    values = {c[0]: c[1] for c in described.resources[0][4]}
    expect(values.get("retention.ms") == "86400000",
           "retention.ms after alter_configs: %r" % values.get("retention.ms"))
    admin.close()
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    expect(p.partitions_for(topic) == set(range(PARTITIONS + 1)),
           "after create_partitions: partitions %r" % p.partitions_for(topic))
    md = p.send(topic, value=b"new-partition", partition=PARTITIONS).get(timeout=10)
    expect(md.offset == 0, "first record of the new partition at offset %d" % md.offset)
    p.close()
    print("python_test: ok: %d records produced and read back, group resumed with %d, "
          "then listed, described and deleted; the topic grew to %d partitions"
          % (total, len(later), PARTITIONS + 1))


if __name__ == "__main__":
    main()
