package shardmq.interop5;

import shardmq.interop.common.Common;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.common.message.MessageRequestMode;

/**
 * POP-mode push consumer (rocketmq-client 5.x remoting client):
 * DefaultMQPushConsumer with setClientRebalance(false), so the client asks
 * the broker for its queues (QUERY_ASSIGNMENT, every 20 s and at start) and
 * consumes the queues the broker assigns in POP mode with POP_MESSAGE, acks
 * each CONSUME_SUCCESS with ACK_MESSAGE and answers each RECONSUME_LATER with
 * CHANGE_MESSAGE_INVISIBLETIME (invisible time = popDelayLevel[reconsumeTimes]
 * seconds: 10 s, 30 s, 60 s, ... unless the listener sets a delay level).
 * The broker assigns POP mode only to a group switched to it with
 * SET_MESSAGE_REQUEST_MODE; --set-mode POP (default) sends that to every
 * master of the topic first, as `mqadmin setConsumeMode` would; --set-mode
 * none skips it.
 *
 * <p>Options: --invisible-ms (setPopInvisibleTime; the client uses 60000 when
 * it is outside [5000, 300000]), --batch (setPopBatchNums, 1..32),
 * --from first|last (CONSUME_FROM_FIRST_OFFSET → initMode MIN),
 * --reconsume-later N: RECONSUME_LATER while reconsumeTimes &lt; N, only for keys
 * in --later-keys k1,k2 when given; --delay-level L
 * (context.setDelayLevelWhenNextConsume(L) on RECONSUME_LATER);
 * --consume-ms N: the listener sleeps N ms per message.
 *
 * <p>Output: {"event":"mode","results":[...]} (SET_MESSAGE_REQUEST_MODE answers),
 * {"event":"started"}, {"event":"queues","pop":[...],"pull":[...]} whenever the
 * assigned POP / PULL queues change, one {"event":"msg",...} per delivery
 * (keys, msgId, queueId, queueOffset, reconsumeTimes, popCk and its parsed
 * fields ck, recvMs, status = the listener's answer, ...), "rpc" events for
 * QUERY_ASSIGNMENT / POP / ACK / CHANGE_INVISIBLETIME / PULL round trips (see
 * Rpc.java), {"event":"complete"} once --expect distinct keys arrived, then
 * after --linger-ms (or at stdin EOF) {"event":"done","rpcCounts":{...}},
 * shutdown, {"event":"shutdown"}; exit 0. --timeout-ms: exit 3.
 */
final class PopConsumerScenario {
    private static final String USAGE = "usage: pop-consume --namesrv 127.0.0.1:9876 --topic T --group G [--sub *] "
        + "[--set-mode POP|PULL|none] [--pop-share-queue-num 0] [--invisible-ms 60000] [--batch 32] "
        + "[--from first|last] [--expect N] [--linger-ms 2000] [--reconsume-later N] [--later-keys k1,k2] "
        + "[--delay-level 0] [--consume-ms 0] [--ignore-tag Warmup] [--instance NAME] [--rebalance-ms 0] "
        + "[--timeout-ms 60000]";

    static void main(String[] argv) throws Exception {
        Common.Opts o = new Common.Opts(USAGE, argv, Common.spec(
            "namesrv", null, "topic", null, "group", null, "sub", "*", "set-mode", "POP", "pop-share-queue-num", "0",
            "invisible-ms", "60000", "batch", "32", "from", "first", "expect", "0", "linger-ms", "2000",
            "reconsume-later", "0", "later-keys", "", "delay-level", "0", "consume-ms", "0", "ignore-tag", "Warmup",
            "instance", "", "rebalance-ms", "0", "timeout-ms", "60000"));
        Common.startWatchdog(o.num("timeout-ms"), "pop-consume");
        String topic = o.str("topic");
        String group = o.str("group");
        long expect = o.num("expect");
        if (o.num("rebalance-ms") > 0) {
            System.setProperty("rocketmq.client.rebalance.waitInterval", o.str("rebalance-ms"));
        }
        Rpc rpc = new Rpc(true);

        if (!o.str("set-mode").equals("none")) {
            Client5 admin = null;
            try {
                admin = new Client5(o.str("namesrv"), "pop-admin", new Rpc(false));
                List<Object> res = admin.setMode(topic, group, MessageRequestMode.valueOf(o.str("set-mode")),
                    o.integer("pop-share-queue-num"), 5000);
                Common.emit(Common.obj("event", "mode", "results", res));
            } catch (Exception e) {
                Common.fail("set-mode", e);
            } finally {
                if (admin != null) {
                    admin.shutdown();
                }
            }
        }

        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(group, rpc);
        consumer.setNamesrvAddr(o.str("namesrv"));
        consumer.setVipChannelEnabled(false);
        consumer.setClientRebalance(false);
        consumer.setPopInvisibleTime(o.num("invisible-ms"));
        consumer.setPopBatchNums(o.integer("batch"));
        consumer.setConsumeFromWhere("last".equals(o.str("from")) ? ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET
            : ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.setInstanceName(o.str("instance").isEmpty() ? "pop-" + ProcessHandle.current().pid()
            : o.str("instance"));
        long reconsumeLater = o.num("reconsume-later");
        Set<String> laterKeys = new TreeSet<>();
        for (String k : o.str("later-keys").split(",")) {
            if (!k.isEmpty()) {
                laterKeys.add(k);
            }
        }
        int delayLevel = o.integer("delay-level");
        long consumeMs = o.num("consume-ms");
        String ignoreTag = o.str("ignore-tag");
        Map<String, Integer> seen = new ConcurrentHashMap<>();
        AtomicLong deliveries = new AtomicLong();
        AtomicLong completeAt = new AtomicLong(0);
        Object lock = new Object();

        try {
            consumer.subscribe(topic, o.str("sub"));
            consumer.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
                boolean later = false;
                for (MessageExt m : msgs) {
                    long recvMs = System.currentTimeMillis();
                    Map<String, Object> rec = Client5.msgJson(m);
                    MessageQueue mq = ctx.getMessageQueue();
                    rec.put("mqBroker", mq == null ? null : mq.getBrokerName());
                    rec.put("mqQueueId", mq == null ? null : mq.getQueueId());
                    rec.put("recvMs", recvMs);
                    if (ignoreTag != null && !ignoreTag.isEmpty() && ignoreTag.equals(m.getTags())) {
                        rec.put("event", "ignored");
                        Common.emit(rec);
                        continue;
                    }
                    boolean l = m.getReconsumeTimes() < reconsumeLater
                        && (laterKeys.isEmpty() || laterKeys.contains(m.getKeys()));
                    later |= l;
                    rec.put("event", "msg");
                    rec.put("status", l ? "RECONSUME_LATER" : "CONSUME_SUCCESS");
                    Common.emit(rec);
                    synchronized (lock) {
                        deliveries.incrementAndGet();
                        seen.merge(String.valueOf(m.getKeys()), 1, Integer::sum);
                        if (expect > 0 && seen.size() >= expect && completeAt.get() == 0) {
                            completeAt.set(System.currentTimeMillis());
                            Common.emit(Common.obj("event", "complete", "distinct", seen.size()));
                        }
                    }
                    if (consumeMs > 0) {
                        try {
                            Thread.sleep(consumeMs);
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        }
                    }
                }
                if (later && delayLevel > 0) {
                    ctx.setDelayLevelWhenNextConsume(delayLevel);
                }
                return later ? ConsumeConcurrentlyStatus.RECONSUME_LATER : ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            });
            consumer.start();
        } catch (Exception e) {
            Common.fail("start", e);
        }
        Common.emit(Common.obj("event", "started", "clientRebalance", consumer.isClientRebalance(),
            "popInvisibleTime", consumer.getPopInvisibleTime(), "popBatchNums", consumer.getPopBatchNums()));

        Thread queues = new Thread(() -> {
            Set<String> lastPop = null;
            Set<String> lastPull = null;
            while (true) {
                Set<String> pop = new TreeSet<>();
                Set<String> pull = new TreeSet<>();
                try {
                    for (MessageQueue mq : consumer.getDefaultMQPushConsumerImpl().getRebalanceImpl()
                        .getPopProcessQueueTable().keySet()) {
                        pop.add(mq.getTopic() + "@" + mq.getBrokerName() + ":" + mq.getQueueId());
                    }
                    for (MessageQueue mq : consumer.getDefaultMQPushConsumerImpl().getRebalanceImpl()
                        .getProcessQueueTable().keySet()) {
                        pull.add(mq.getTopic() + "@" + mq.getBrokerName() + ":" + mq.getQueueId());
                    }
                } catch (RuntimeException e) {
                    Common.log("queue poll: " + e);
                }
                if (!pop.equals(lastPop) || !pull.equals(lastPull)) {
                    Common.emit(Common.obj("event", "queues", "pop", List.copyOf(pop), "pull", List.copyOf(pull)));
                    lastPop = pop;
                    lastPull = pull;
                }
                try {
                    Thread.sleep(100);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "queue-poll");
        queues.setDaemon(true);
        queues.start();

        Object stdinDone = new Object();
        boolean[] eof = {false};
        Thread stdin = new Thread(() -> {
            byte[] buf = new byte[4096];
            try {
                while (System.in.read(buf) >= 0) {
                    // discard
                }
            } catch (Exception e) {
                // treat as EOF
            }
            synchronized (stdinDone) {
                eof[0] = true;
                stdinDone.notifyAll();
            }
        }, "stdin-watch");
        stdin.setDaemon(true);
        stdin.start();

        long linger = o.num("linger-ms");
        while (true) {
            synchronized (stdinDone) {
                if (eof[0]) {
                    break;
                }
                long c = completeAt.get();
                if (c != 0 && System.currentTimeMillis() - c >= linger) {
                    break;
                }
                stdinDone.wait(50);
            }
        }
        // Acks are sent asynchronously after the listener returns: give the last ones a moment.
        Thread.sleep(300);
        Common.emit(Common.obj("event", "done", "distinct", seen.size(), "deliveries", deliveries.get(),
            "rpcCounts", rpc.counts()));
        try {
            consumer.shutdown();
            Common.emit(Common.obj("event", "shutdown"));
        } catch (Exception e) {
            Common.log("consumer shutdown: " + e);
        }
        Common.halt(0);
    }
}
