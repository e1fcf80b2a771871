#!/usr/bin/env node
// kafkajs (2.2.4, pinned in package-lock.json) against a Kafka endpoint, issue 5's kafkajs test:
// produce, consume in a group, commit, stop, "restart" (a new consumer in the same group) and
// check that it resumes from the committed offset: it gets exactly the records after it. Then
// the admin client lists, describes and deletes the group, grows the topic by a partition and
// sets its retention.ms (ListGroups, DescribeGroups, DeleteGroups, CreatePartitions,
// AlterConfigs, DescribeConfigs), and deletes partition 0's first records (DeleteRecords).
//
//   node kafkajs_test.js BOOTSTRAP TOPIC
//
// Records go to partition 0 (any partition count works). The topic is made with CreateTopics
// (2 partitions) or, where that is missing (the mock cluster), auto-created on produce.
// librdkafka's mock cluster passes steps 1-4 and fails step 5 at listGroups, an API it does
// not serve.
// Exit 0 with "PASS", 1 with "FAIL: <what>". kafkajs comes from node_modules next to this file
// or from NODE_PATH (ctest installs it into the build directory with npm ci).
'use strict';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic] = process.argv.slice(2);
if (!bootstrap || !topic) {
  console.error('usage: node kafkajs_test.js BOOTSTRAP TOPIC');
  process.exit(2);
}
const group = `${topic}-group-${Date.now()}`;
const kafka = new Kafka({
  clientId: 'sluice-kafkajs-test',
  brokers: bootstrap.split(','),
  logLevel: logLevel.WARN,
  retry: { retries: 5 },
});

function fail(what) {
  console.error(`kafkajs_test: FAIL: ${what}`);
  process.exit(1);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Runs a group member until `want` records were handled or `ms` passed; handle(message) returns
// false to stop handling (later deliveries are ignored, not committed). Returns the records.
async function consume(want, ms, handle) {
  const consumer = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const got = [];
  let stopped = false;
  let done;
  const finished = new Promise((r) => { done = r; });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      if (stopped) return;
      const rec = { partition, offset: Number(message.offset),
                    key: message.key && message.key.toString(), value: message.value.toString() };
      got.push(rec);
      if (handle && !(await handle(consumer, rec))) stopped = true;
      if (stopped || got.length >= want) done();
    },
  });
  await Promise.race([finished, sleep(ms)]);
  stopped = true;
  await sleep(1000);  // anything extra that would still arrive (must not)
  await consumer.disconnect();
  return got;
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
  } catch (e) {
    console.log(`CreateTopics: ${e.message} (relying on auto-creation)`);
  }

  // 1. Produce 20 records to partition 0.
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  await producer.connect();
  const first = await producer.send({
    topic, acks: -1,
    messages: Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: `v${i}`, partition: 0 })),
  });
  const base = Number(first[0].baseOffset);
  console.log(`produced 20 records at offsets ${base}..${base + 19}`);

  // 2. Consume in the group; commit after the 10th record, then stop.
  const part1 = await consume(10, 30000, async (consumer, rec) => {
    if (rec.offset === base + 9) {
      await consumer.commitOffsets([{ topic, partition: 0, offset: String(rec.offset + 1) }]);
      return false;
    }
    return true;
  });
  const seen1 = part1.map((r) => r.value);
  const want1 = Array.from({ length: 10 }, (_, i) => `v${i}`);
  if (JSON.stringify(seen1.slice(0, 10)) !== JSON.stringify(want1))
    fail(`first member got ${JSON.stringify(seen1)}, want ${JSON.stringify(want1)} first`);
  if (part1.some((r) => r.partition !== 0)) fail('records on a partition other than 0');
  for (const r of part1.slice(0, 10))
    if (r.key !== `k${r.offset - base}` || r.value !== `v${r.offset - base}`)
      fail(`offset ${r.offset}: key ${r.key} value ${r.value}`);

  // 3. The committed offset, as the group coordinator has it.
  const offsets = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  const p0 = offsets[0].partitions.find((p) => p.partition === 0);
  if (!p0 || Number(p0.offset) !== base + 10)
    fail(`committed offset of partition 0 is ${p0 && p0.offset}, want ${base + 10}`);
  console.log(`group ${group} committed offset ${p0.offset} on partition 0`);

  // 4. Five more records, then a new member of the same group: exactly offsets base+10..base+24.
  await producer.send({
    topic, acks: -1,
    messages: Array.from({ length: 5 }, (_, i) => ({ key: `k${20 + i}`, value: `v${20 + i}`, partition: 0 })),
  });
  await producer.disconnect();
  const part2 = await consume(15, 30000, async (consumer, rec) => {
    await consumer.commitOffsets([{ topic, partition: rec.partition, offset: String(rec.offset + 1) }]);
    return true;
  });
  const seen2 = part2.map((r) => `${r.offset - base}:${r.value}`);
  const want2 = Array.from({ length: 15 }, (_, i) => `${10 + i}:v${10 + i}`);
  if (JSON.stringify(seen2) !== JSON.stringify(want2))
    fail(`restarted member got ${JSON.stringify(seen2)}, want exactly ${JSON.stringify(want2)}`);
  const end = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  const e0 = end[0].partitions.find((p) => p.partition === 0);
  if (!e0 || Number(e0.offset) !== base + 25) fail(`final committed offset ${e0 && e0.offset}, want ${base + 25}`);

  // 5. The admin APIs, the group having no members now.
  const listed = (await admin.listGroups()).groups.find((g) => g.groupId === group);
  if (!listed || listed.protocolType !== 'consumer') fail(`listGroups: ${JSON.stringify(listed)}`);
  const [described] = (await admin.describeGroups([group])).groups;
  if (described.state !== 'Empty' || described.members.length !== 0)
    fail(`describeGroups: ${JSON.stringify(described)}, want Empty without members`);
  const [deleted] = await admin.deleteGroups([group]);
  if (deleted.errorCode !== 0) fail(`deleteGroups: ${JSON.stringify(deleted)}`);
  const gone = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  if (gone[0].partitions.some((p) => Number(p.offset) !== -1))
    fail(`offsets of the deleted group: ${JSON.stringify(gone)}`);
  const before = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0].partitions.length;
  await admin.createPartitions({ topicPartitions: [{ topic, count: before + 1 }] });
  const after = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0].partitions.length;
  if (after !== before + 1) fail(`createPartitions: ${after} partitions, want ${before + 1}`);
  await admin.alterConfigs({
    validateOnly: false,
    resources: [{ type: 2, name: topic, configEntries: [{ name: 'retention.ms', value: '86400000' }] }],
  });
  const configs = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: 2, name: topic, configNames: ['retention.ms'] }],
  });
  const retention = configs.resources[0].configEntries.find((e) => e.configName === 'retention.ms');
  if (!retention || retention.configValue !== '86400000')
    fail(`retention.ms after alterConfigs: ${JSON.stringify(retention)}`);
  // DeleteRecords: partition 0 then starts at the cut (its low watermark, from ListOffsets).
  const cut = base + 10;
  await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: String(cut) }] });
  const low = (await admin.fetchTopicOffsets(topic)).find((p) => p.partition === 0).low;
  if (Number(low) !== cut) fail(`low watermark after deleteTopicRecords: ${low}, want ${cut}`);
  await admin.disconnect();
  console.log('kafkajs_test: PASS (resumed at the committed offset, 15 records exactly; ' +
    'the group listed, described and deleted; the topic grown and reconfigured; records deleted)');
}

main().then(() => process.exit(0), (e) => fail(e.stack || String(e)));
