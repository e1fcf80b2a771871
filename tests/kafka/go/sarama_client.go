// Sarama (Debian's golang-github-shopify-sarama-dev 1.22.1, the Go client; pure Go, no
// librdkafka) against sluiced's Kafka gateway: a third implementation of the protocol's client
// side, beside librdkafka and kafka-python.
//
//	sarama_client BOOTSTRAP TOPIC
//
// TOPIC must exist with 4 partitions (with_sluiced.sh --topic TOPIC:4). Checks, in order:
//  1. metadata: the topic and its 4 partitions;
//  2. an idempotent producer (acks=all, one request in flight) sends 600 records with keys,
//     headers and given timestamps, 120 each uncompressed, gzip, snappy, lz4 and zstd, 150 to
//     each partition: each partition's offsets are 0..149 in send order;
//  3. a consumer group of one member reads from the earliest offset; once it has read 200
//     records a second member joins (a rebalance). Together they read all 600 exactly once,
//     with the keys, values, headers and timestamps sent, and commit;
//  4. the committed offsets (OffsetFetch through a third client) are the partitions' ends;
//  5. after 40 more records, a new member of the same group reads exactly those 40: it
//     resumes from the committed offsets;
//  6. the cluster admin (ListGroups, DescribeGroups, DeleteGroups) lists the group, describes
//     it Empty once its members have left, and deletes it with its committed offsets;
//  7. the cluster admin's DeleteRecords moves partition 0's start to offset 100: the oldest
//     offset is 100, consuming from 99 is out of range, from the oldest starts at 100.
//
// Exits 0 on success; prints what differed and exits 1 otherwise.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

const (
	partitions   = 4
	perCodec     = 120
	extraRecords = 40
	group        = "sarama-group"
)

var codecs = []sarama.CompressionCodec{
	sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy,
	sarama.CompressionLZ4, sarama.CompressionZSTD,
}

var baseTime = time.Unix(1_700_000_000, 0)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "sarama_client: FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func config() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "sluice-sarama-test"
	cfg.Version = sarama.V2_1_0_0 // record batches v2, zstd, headers
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}

// record i of the run: its key, value, header and timestamp, and the partition it goes to.
func message(topic string, i int) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{
		Topic:     topic,
		Partition: int32(i % partitions),
		Key:       sarama.StringEncoder("k" + strconv.Itoa(i)),
		Value:     sarama.StringEncoder(fmt.Sprintf("value %d from sarama", i)),
		Headers:   []sarama.RecordHeader{{Key: []byte("i"), Value: []byte(strconv.Itoa(i))}},
		Timestamp: baseTime.Add(time.Duration(i) * time.Millisecond),
	}
}

// check compares a consumed record with what record i was sent as.
func check(m *sarama.ConsumerMessage, i int) {
	want := message(m.Topic, i)
	wantKey, _ := want.Key.Encode()
	wantValue, _ := want.Value.Encode()
	if string(m.Key) != string(wantKey) || string(m.Value) != string(wantValue) {
		fail("partition %d offset %d: key %q value %q, want %q %q", m.Partition, m.Offset,
			m.Key, m.Value, wantKey, wantValue)
	}
	if len(m.Headers) != 1 || string(m.Headers[0].Key) != "i" ||
		string(m.Headers[0].Value) != strconv.Itoa(i) {
		fail("partition %d offset %d: headers %v, want i=%d", m.Partition, m.Offset, m.Headers, i)
	}
	if !m.Timestamp.Equal(want.Timestamp) {
		fail("partition %d offset %d: timestamp %v, want %v", m.Partition, m.Offset, m.Timestamp,
			want.Timestamp)
	}
}

// produce sends records first..last-1, each codec's share in turn, and checks that every
// partition's offsets follow on from `next`.
func produce(bootstrap, topic string, first, last int, next map[int32]int64) {
	per := (last - first + len(codecs) - 1) / len(codecs)
	for c, codec := range codecs {
		cfg := config()
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Producer.Idempotent = true
		cfg.Net.MaxOpenRequests = 1
		cfg.Producer.Return.Successes = true
		cfg.Producer.Partitioner = sarama.NewManualPartitioner
		cfg.Producer.Compression = codec
		cfg.Producer.Flush.Messages = 25 // several records a batch, so the codec has work
		cfg.Producer.Flush.Frequency = 5 * time.Millisecond
		p, err := sarama.NewAsyncProducer([]string{bootstrap}, cfg)
		if err != nil {
			fail("producer (%v): %v", codec, err)
		}
		lo, hi := first+c*per, first+(c+1)*per
		if hi > last {
			hi = last
		}
		go func() {
			for i := lo; i < hi; i++ {
				m := message(topic, i)
				m.Metadata = i
				p.Input() <- m
			}
		}()
		for n := lo; n < hi; n++ {
			select {
			case m := <-p.Successes():
				i := m.Metadata.(int)
				if m.Partition != int32(i%partitions) || m.Offset != next[m.Partition] {
					fail("record %d (%v): partition %d offset %d, want partition %d offset %d",
						i, codec, m.Partition, m.Offset, i%partitions, next[int32(i%partitions)])
				}
				next[m.Partition]++
			case e := <-p.Errors():
				fail("produce (%v): %v", codec, e.Err)
			case <-time.After(30 * time.Second):
				fail("produce (%v): no acknowledgement for 30 s", codec)
			}
		}
		if err := p.Close(); err != nil {
			fail("producer close (%v): %v", codec, err)
		}
	}
}

// shared is what the members of one read() share.
type shared struct {
	mu     sync.Mutex
	seen   map[string]string // "partition/offset" -> member that read it
	read   int               // records admitted so far
	joinAt int               // admit no more than this many until `joined` (< 0: no limit)
	joined chan struct{}     // closed when the second member has its first session
	once   sync.Once
	ch     chan int // one send per record read
}

// admit says whether a member may read one more record. Once joinAt records are read, it
// holds the first member until the second has joined: false if the first member's session
// ends meanwhile (the rebalance), leaving the record unread and uncommitted for the next.
func (st *shared) admit(s sarama.ConsumerGroupSession) bool {
	st.mu.Lock()
	if st.joinAt < 0 || st.read < st.joinAt {
		st.read++
		st.mu.Unlock()
		return true
	}
	st.mu.Unlock()
	select {
	case <-st.joined:
		st.mu.Lock()
		st.read++
		st.mu.Unlock()
		return true
	case <-s.Context().Done():
		return false
	}
}

// member is one group member's handler.
type member struct {
	name string
	st   *shared
}

func (h *member) Setup(sarama.ConsumerGroupSession) error {
	if h.name == "member-2" {
		h.st.once.Do(func() { close(h.st.joined) })
	}
	return nil
}
func (h *member) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *member) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		if !h.st.admit(s) {
			return nil
		}
		id := fmt.Sprintf("%d/%d", m.Partition, m.Offset)
		h.st.mu.Lock()
		if prev, dup := h.st.seen[id]; dup {
			h.st.mu.Unlock()
			fail("record %s read twice: by %s and by %s", id, prev, h.name)
		}
		h.st.seen[id] = h.name
		h.st.mu.Unlock()
		if len(m.Headers) != 1 {
			fail("record %s: headers %v", id, m.Headers)
		}
		i, err := strconv.Atoi(string(m.Headers[0].Value))
		if err != nil {
			fail("record %s: header %q", id, m.Headers[0].Value)
		}
		check(m, i)
		s.MarkMessage(m, "")
		h.st.ch <- 1
	}
	return nil
}

// runMember consumes in the group until ctx ends, then leaves it (committing what it marked).
func runMember(ctx context.Context, bootstrap, topic string, h *member, done *sync.WaitGroup) {
	defer done.Done()
	cfg := config()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.CommitInterval = 200 * time.Millisecond
	cfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
	g, err := sarama.NewConsumerGroup([]string{bootstrap}, group, cfg)
	if err != nil {
		fail("%s: consumer group: %v", h.name, err)
	}
	go func() {
		for err := range g.Errors() {
			fail("%s: %v", h.name, err)
		}
	}()
	for ctx.Err() == nil {
		if err := g.Consume(ctx, []string{topic}, h); err != nil {
			fail("%s: consume: %v", h.name, err)
		}
	}
	if err := g.Close(); err != nil {
		fail("%s: close: %v", h.name, err)
	}
}

// read runs members of the group until `want` records have been read, the second member
// joining once `joinAt` have been (no second member if joinAt < 0), while the first waits for
// it. Returns how many each read.
func read(bootstrap, topic string, want, joinAt int) map[string]int {
	st := &shared{seen: map[string]string{}, joinAt: joinAt, joined: make(chan struct{}),
		ch: make(chan int, 1024)}
	ctx, cancel := context.WithCancel(context.Background())
	var done sync.WaitGroup
	start := func(name string) {
		done.Add(1)
		go runMember(ctx, bootstrap, topic, &member{name, st}, &done)
	}
	start("member-1")
	got := 0
	deadline := time.After(60 * time.Second)
	for got < want {
		select {
		case <-st.ch:
			got++
			if got == joinAt {
				start("member-2")
			}
		case <-deadline:
			fail("the group read %d of %d records in 60 s", got, want)
		}
	}
	// Anything more within a second would be a record read twice (or one never sent).
	select {
	case <-st.ch:
		fail("the group read more than the %d records sent", want)
	case <-time.After(time.Second):
	}
	cancel()
	done.Wait()
	per := map[string]int{}
	st.mu.Lock()
	for _, name := range st.seen {
		per[name]++
	}
	st.mu.Unlock()
	return per
}

func committed(bootstrap, topic string) map[int32]int64 {
	client, err := sarama.NewClient([]string{bootstrap}, config())
	if err != nil {
		fail("client: %v", err)
	}
	defer client.Close()
	om, err := sarama.NewOffsetManagerFromClient(group, client)
	if err != nil {
		fail("offset manager: %v", err)
	}
	defer om.Close()
	out := map[int32]int64{}
	for p := int32(0); p < partitions; p++ {
		pom, err := om.ManagePartition(topic, p)
		if err != nil {
			fail("offset manager, partition %d: %v", p, err)
		}
		out[p], _ = pom.NextOffset()
		pom.Close()
	}
	return out
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: sarama_client BOOTSTRAP TOPIC")
		os.Exit(2)
	}
	bootstrap, topic := os.Args[1], os.Args[2]

	// 1. metadata
	client, err := sarama.NewClient([]string{bootstrap}, config())
	if err != nil {
		fail("client: %v", err)
	}
	ps, err := client.Partitions(topic)
	if err != nil || len(ps) != partitions {
		fail("metadata: topic %s has partitions %v (%v), want %d", topic, ps, err, partitions)
	}
	client.Close()

	// 2. produce, every codec
	total := perCodec * len(codecs)
	next := map[int32]int64{}
	produce(bootstrap, topic, 0, total, next)
	fmt.Printf("sarama_client: produced %d records, %d per codec\n", total, perCodec)

	// 3. a group of one, then two
	per := read(bootstrap, topic, total, 200)
	if per["member-1"] < 200 || per["member-2"] == 0 {
		fail("the rebalance did not share the work: %v", per)
	}
	fmt.Printf("sarama_client: the group read all %d once (by member: %v)\n", total, per)

	// 4. committed offsets are the ends
	c := committed(bootstrap, topic)
	for p := int32(0); p < partitions; p++ {
		if c[p] != next[p] {
			fail("partition %d: committed %d, end %d", p, c[p], next[p])
		}
	}

	// 5. resume from them
	produce(bootstrap, topic, total, total+extraRecords, next)
	per = read(bootstrap, topic, extraRecords, -1)
	fmt.Printf("sarama_client: a new member resumed and read the %d new records (%v)\n",
		extraRecords, per)
	// 6. the group admin APIs
	admin, err := sarama.NewClusterAdmin([]string{bootstrap}, config())
	if err != nil {
		fail("cluster admin: %v", err)
	}
	groups, err := admin.ListConsumerGroups()
	if err != nil || groups[group] != "consumer" {
		fail("ListGroups: %v (%v), want %s of protocol type consumer", groups, err, group)
	}
	described, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil || len(described) != 1 || described[0].State != "Empty" ||
		len(described[0].Members) != 0 {
		fail("DescribeGroups: %+v (%v), want %s Empty without members", described, err, group)
	}
	// Sarama 1.22's admin has no DeleteConsumerGroup: its DeleteGroups request, to the
	// group's coordinator.
	client, err = sarama.NewClient([]string{bootstrap}, config())
	if err != nil {
		fail("client: %v", err)
	}
	coordinator, err := client.Coordinator(group)
	if err != nil {
		fail("coordinator: %v", err)
	}
	deleted, err := coordinator.DeleteGroups(&sarama.DeleteGroupsRequest{Groups: []string{group}})
	if err != nil || deleted.GroupErrorCodes[group] != sarama.ErrNoError {
		fail("DeleteGroups: %+v (%v)", deleted, err)
	}
	client.Close()
	for p, off := range committed(bootstrap, topic) {
		if off != sarama.OffsetNewest && off != -1 {
			fail("partition %d: committed %d after the group was deleted", p, off)
		}
	}
	fmt.Println("sarama_client: the cluster admin listed, described and deleted the group")

	// 7. DeleteRecords
	const cut = 100
	if err := admin.DeleteRecords(topic, map[int32]int64{0: cut}); err != nil {
		fail("DeleteRecords: %v", err)
	}
	admin.Close()
	reader, err := sarama.NewClient([]string{bootstrap}, config())
	if err != nil {
		fail("client: %v", err)
	}
	defer reader.Close()
	if oldest, err := reader.GetOffset(topic, 0, sarama.OffsetOldest); err != nil || oldest != cut {
		fail("partition 0 after DeleteRecords: oldest offset %d (%v), want %d", oldest, err, cut)
	}
	consumer, err := sarama.NewConsumerFromClient(reader)
	if err != nil {
		fail("consumer: %v", err)
	}
	defer consumer.Close()
	if _, err := consumer.ConsumePartition(topic, 0, cut-1); err != sarama.ErrOffsetOutOfRange {
		fail("consuming partition 0 from %d after DeleteRecords: %v, want %v", cut-1, err,
			sarama.ErrOffsetOutOfRange)
	}
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		fail("consuming partition 0 from the oldest offset: %v", err)
	}
	select {
	case m := <-pc.Messages():
		if m.Offset != cut {
			fail("partition 0 after DeleteRecords: first record at %d, want %d", m.Offset, cut)
		}
	case <-time.After(10 * time.Second):
		fail("partition 0 after DeleteRecords: no record in 10 s")
	}
	pc.Close()
	fmt.Printf("sarama_client: DeleteRecords moved partition 0's start to %d\n", cut)
	fmt.Println("sarama_client: OK")
}
