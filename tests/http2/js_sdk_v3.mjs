// The AWS SDK for JavaScript v3 Kinesis client with its default configuration (only the endpoint is
// given; region and credentials come from the environment) against `fastkin serve`. Prints one JSON
// line of what it saw; tests/http2/test_js_sdk.py checks it. Usage: node js_sdk_v3.mjs <endpoint>
import {
  KinesisClient, CreateStreamCommand, DescribeStreamCommand, DescribeStreamSummaryCommand, ListShardsCommand,
  PutRecordCommand, PutRecordsCommand, GetShardIteratorCommand, GetRecordsCommand, RegisterStreamConsumerCommand,
  SubscribeToShardCommand, waitUntilStreamExists,
} from "@aws-sdk/client-kinesis";

const watchdog = setTimeout(() => { console.error("timed out"); process.exit(3); }, 45_000);
const endpoint = process.argv[2];
const client = new KinesisClient({ endpoint });
const enc = new TextEncoder();
const dec = new TextDecoder();
const out = { handler: client.config.requestHandler?.constructor?.name };

await client.send(new CreateStreamCommand({ StreamName: "js", ShardCount: 2 }));
await waitUntilStreamExists({ client, maxWaitTime: 20 }, { StreamName: "js" });
const before = new Date(Date.now() - 60_000);
const one = await client.send(new PutRecordCommand({ StreamName: "js", Data: enc.encode("hello"), PartitionKey: "k0" }));
const many = await client.send(new PutRecordsCommand({
  StreamName: "js",
  Records: Array.from({ length: 20 }, (_, i) => ({ Data: enc.encode(`r${i}`), PartitionKey: `k${i}` })),
}));
out.failed = many.FailedRecordCount;
const summary = (await client.send(new DescribeStreamSummaryCommand({ StreamName: "js" }))).StreamDescriptionSummary;
out.created = summary.StreamCreationTimestamp.toISOString();
const shards = (await client.send(new ListShardsCommand({ StreamName: "js" }))).Shards.map((s) => s.ShardId);
out.shards = shards;

// AT_TIMESTAMP iterators (a Date), then GetRecords on every shard
out.records = [];
for (const ShardId of shards) {
  const it = await client.send(new GetShardIteratorCommand({
    StreamName: "js", ShardId, ShardIteratorType: "AT_TIMESTAMP", Timestamp: before,
  }));
  const page = await client.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator }));
  for (const r of page.Records) {
    out.records.push({ shard: ShardId, data: dec.decode(r.Data), arrival: r.ApproximateArrivalTimestamp.toISOString() });
  }
}

// a modeled error
try {
  await client.send(new DescribeStreamCommand({ StreamName: "missing" }));
} catch (e) {
  out.error = { name: e.name, status: e.$metadata?.httpStatusCode, message: e.message };
}

// enhanced fan-out: one subscription per shard, concurrently (HTTP/2 streams of one session)
const consumer = (await client.send(new RegisterStreamConsumerCommand({
  StreamARN: summary.StreamARN, ConsumerName: "js-efo",
}))).Consumer;
const expected = new Map(shards.map((s) => [s, out.records.filter((r) => r.shard === s).length]));
out.subscribed = {};
await Promise.all(shards.map(async (ShardId) => {
  const sub = await client.send(new SubscribeToShardCommand({
    ConsumerARN: consumer.ConsumerARN, ShardId, StartingPosition: { Type: "TRIM_HORIZON" },
  }));
  const got = [];
  for await (const ev of sub.EventStream) {
    if (ev.SubscribeToShardEvent) {
      for (const r of ev.SubscribeToShardEvent.Records) got.push(dec.decode(r.Data));
      if (got.length >= expected.get(ShardId)) break;
    }
  }
  out.subscribed[ShardId] = got;
}));
out.putShard = one.ShardId;
client.destroy();
clearTimeout(watchdog);
console.log(JSON.stringify(out));
