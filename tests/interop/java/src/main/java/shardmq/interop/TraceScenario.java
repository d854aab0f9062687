package shardmq.interop;

import shardmq.interop.common.Common;

import java.nio.charset.StandardCharsets;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * Java (rocketmq-client 4.9.x) with message trace on: a producer and a push
 * consumer built with enableMsgTrace = true (the client's own trace
 * dispatcher writes Pub, SubBefore and SubAfter records to
 * RMQ_SYS_TRACE_TOPIC), unmodified.
 *
 * <p>Sends --count messages (keys "&lt;prefix&gt;-k&lt;i&gt;", body "&lt;prefix&gt; body
 * #&lt;i&gt;"), one "sent" {i, msgId, offsetMsgId} each; consumes them with
 * --group, one "received" {msgId} each; then shuts both down (which flushes
 * the trace records) and emits "done".
 */
final class TraceScenario {
    private static final String USAGE = "usage: trace --namesrv 127.0.0.1:9876 --topic T --group G --count N "
        + "[--prefix t] [--wait-ms 30000] [--timeout-ms 90000]";

    static void main(String[] argv) throws Exception {
        Common.Opts o = new Common.Opts(USAGE, argv, Common.spec(
            "namesrv", null, "topic", null, "group", null, "count", "0", "prefix", "t", "wait-ms", "30000",
            "timeout-ms", "90000"));
        Common.startWatchdog(o.num("timeout-ms"), "trace");
        String topic = o.str("topic");
        String prefix = o.str("prefix");
        int count = (int) o.num("count");
        Set<String> received = ConcurrentHashMap.newKeySet();
        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(o.str("group"), true);
        DefaultMQProducer producer = new DefaultMQProducer("P" + o.str("group"), true);
        try {
            consumer.setNamesrvAddr(o.str("namesrv"));
            consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
            consumer.subscribe(topic, "*");
            consumer.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
                for (MessageExt m : msgs) {
                    if (received.add(m.getMsgId())) {
                        Common.emit(Common.obj("event", "received", "msgId", m.getMsgId(),
                            "body", new String(m.getBody(), StandardCharsets.UTF_8)));
                    }
                }
                return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            });
            consumer.start();
            producer.setNamesrvAddr(o.str("namesrv"));
            producer.setRetryTimesWhenSendFailed(0);
            producer.start();
            for (int i = 0; i < count; i++) {
                Message m = new Message(topic, "TagT", prefix + "-k" + i,
                    (prefix + " body #" + i).getBytes(StandardCharsets.UTF_8));
                SendResult r = producer.send(m);
                Common.emit(Common.obj("event", "sent", "i", i, "msgId", r.getMsgId(),
                    "offsetMsgId", r.getOffsetMsgId()));
            }
            long deadline = System.currentTimeMillis() + o.num("wait-ms");
            while (received.size() < count && System.currentTimeMillis() < deadline) {
                Thread.sleep(100);
            }
            // Let the trace dispatchers send their batches (they also
            // flush at shutdown).
            Thread.sleep(2000);
        } catch (Exception e) {
            Common.fail("trace", e);
        }
        producer.shutdown();
        consumer.shutdown();
        Common.emit(Common.obj("event", "done", "received", received.size()));
        Common.halt(0);
    }
}
