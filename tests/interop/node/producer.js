'use strict';
// ali-ons 3.12.0 producer scenario.
//
// Sends --count messages numbered --start .. --start+count-1. Message i has
//   key   = <prefix>-k<i>, tag = tags[i % tags.length], body = "<prefix> body #<i> ✓",
//   props = seq=<i>, prefix=<prefix>, color="blue green"
//   (+ in --mode orderly: orderKey, orderSeq = i // orderKeys, and msg.shardingKey = orderKey)
// Modes: sync (producer.send; ali-ons has no oneway/batch API) and orderly
// (sharding key: ali-ons picks queueIds[md5(key) % n] — but a key that maps
// to queue id 0 falls back to round robin (`queueIds[i] || ''`), so orderly
// mode only uses keys that do not map to queue 0; see "orderKeys" in the
// started event).
//
// Delays: --deliver-after-ms N sets msg.setStartDeliverTime(Date.now() + N)
// (property __STARTDELIVERTIME, absolute ms; the "sent" event says deliverAtMs),
// --delay-level L sets msg.delayTimeLevel = L (property DELAY).
// Every "sent" event has sendStartMs / sendEndMs (Date.now() around send()).
//
// Output (JSON lines): {"event":"started"}, {"event":"sent", i, key, tag, msgId,
// queueId, queueOffset, status} per message, {"event":"done","sent":n};
// failure: {"event":"error",...} and exit code 1.
const c = require('./common');

const USAGE = 'usage: node producer.js --namesrv 127.0.0.1:9876 --topic T --group G --count N ' +
  '[--start 0] [--prefix m] [--tags TagA,TagB,TagC] [--mode sync|orderly] [--order-keys 4] [--timeout-ms 60000] ' +
  '[--deliver-after-ms N] [--delay-level L] [--ak AK --sk SK]';
const args = c.parseOrExit({
  namesrv: null, topic: null, group: null, count: null,
  start: 0, prefix: 'm', tags: 'TagA,TagB,TagC', mode: 'sync', orderKeys: 4,
  timeoutMs: 60000, sendTimeoutMs: 5000, deliverAfterMs: 0, delayLevel: 0, ak: '', sk: '',
}, USAGE);
args.count = Number(args.count);
if (!Number.isInteger(args.count) || args.count < 0) {
  c.emit({ event: 'error', stage: 'args', error: `--count must be a non-negative integer` });
  process.exit(2);
}
if (![ 'sync', 'orderly' ].includes(args.mode)) {
  c.emit({ event: 'error', stage: 'args', error: `ali-ons supports --mode sync|orderly, not ${args.mode}` });
  process.exit(2);
}
c.startWatchdog(args.timeoutMs, 'producer');
const { Producer, Message } = c.loadAliOns();

async function main() {
  const tags = args.tags.split(',').filter(Boolean);
  const producer = new Producer({
    httpclient: {}, // required by ali-ons even with nameSrv set; never used then
    nameSrv: args.namesrv,
    producerGroup: args.group,
    clientIP: '127.0.0.1',
    sendMsgTimeout: args.sendTimeoutMs,
    logger: c.clientLogger,
    // --ak/--sk: every request signed as that ACL account (AccessKey,
    // OnsChannel, Signature).
    ...(args.ak ? { accessKeyId: args.ak, accessKeySecret: args.sk } : {}),
  });
  producer.on('error', err => c.log(`[producer error] ${err.message}`));
  await producer.ready();

  let orderKeys = [];
  if (args.mode === 'orderly') {
    // Learn the queue ids the producer will choose from (route, or TBW102 for a new topic).
    const info = await producer.tryToFindTopicPublishInfo(args.topic);
    const queueIds = [ ...new Set((info && info.messageQueueList || []).map(mq => mq.queueId)) ];
    if (!queueIds.length) throw new Error(`no route for ${args.topic} (nor TBW102)`);
    for (let n = 0; orderKeys.length < args.orderKeys && n < 10000; n++) {
      const k = `${args.prefix}-o${n}`;
      if (queueIds[c.shardingIndex(k, queueIds.length)] !== 0) orderKeys.push(k);
    }
  }
  c.emit({ event: 'started', mode: args.mode, orderKeys });

  let sent = 0;
  for (let i = args.start; i < args.start + args.count; i++) {
    const key = `${args.prefix}-k${i}`;
    const tag = tags[i % tags.length];
    const msg = new Message(args.topic, tag, `${args.prefix} body #${i} ✓`);
    msg.keys = [ key ];
    msg.properties.seq = String(i);
    msg.properties.prefix = args.prefix;
    msg.properties.color = 'blue green';
    const info = { i, key, tag };
    if (args.mode === 'orderly') {
      const okey = orderKeys[i % orderKeys.length];
      const oseq = Math.floor(i / orderKeys.length);
      msg.properties.orderKey = okey;
      msg.properties.orderSeq = String(oseq);
      msg.shardingKey = okey;
      Object.assign(info, { orderKey: okey, orderSeq: oseq });
    }
    if (args.delayLevel > 0) msg.delayTimeLevel = args.delayLevel;
    const sendStartMs = Date.now();
    if (args.deliverAfterMs > 0) {
      info.deliverAtMs = sendStartMs + args.deliverAfterMs;
      msg.setStartDeliverTime(info.deliverAtMs);
    }
    let res;
    try {
      res = await producer.send(msg);
      info.sendStartMs = sendStartMs;
      info.sendEndMs = Date.now();
    } catch (err) {
      c.emit({ event: 'error', stage: 'send', sent, i, error: `${err.name}: ${err.message}` });
      process.exit(1);
    }
    c.emit(Object.assign({
      event: 'sent',
      msgId: res.msgId,
      // A queue is (broker entry, queue id): with shard-aware routes every
      // shard is its own broker entry numbering its queues from 0.
      queueId: res.messageQueue && `${res.messageQueue.brokerName}:${res.messageQueue.queueId}`,
      queueOffset: res.queueOffset,
      status: res.sendStatus,
    }, info));
    sent++;
  }
  try {
    await producer.close();
  } catch (err) {
    c.log(`producer close: ${err.message}`);
  }
  c.emit({ event: 'done', sent });
  process.exit(0);
}

main().catch(err => {
  c.emit({ event: 'error', stage: 'start', error: `${err.name}: ${err.message}` });
  process.exit(1);
});
