package shardmq.interop5;

import shardmq.interop.common.Common;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.Message;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;
import org.apache.rocketmq.client.apis.producer.Transaction;
import org.apache.rocketmq.client.apis.producer.TransactionResolution;

/**
 * The 5.x gRPC client (rocketmq-client-java) end to end, one JVM:
 * {@code grpc --endpoint HOST:PORT --topic T --group G --count N}.
 * Sends N normal messages (keys n0..), one FIFO (message group), one delayed
 * by --delay-ms, two transactional (tx-commit committed, tx-rollback rolled
 * back) and two left open (tx-orphan-commit, tx-orphan-rollback: the broker
 * must recover them over Telemetry, and the checker answers as the key
 * says); then a SimpleConsumer receives with invisible time 10 s, acks every
 * message except "nack-me" on its first delivery (it must come back), and
 * keeps receiving until --linger-ms after the last new delivery.
 * Events (JSON lines): sent {key, id}, checked {key, id, atMs}, received {key, id, tag, attempt, body,
 * recvMs, group}, acked {key}, error, done.
 */
final class GrpcScenario {
    static void main(String[] argv) throws Exception {
        Common.Opts o = new Common.Opts("usage: grpc --endpoint E --topic T --group G [--count 10]",
            argv, Common.spec("endpoint", null, "namesrv", "", "topic", null, "group", null, "count", "10",
                "delay-ms", "3000", "linger-ms", "14000", "timeout-ms", "120000"));
        Common.startWatchdog(o.num("timeout-ms"), "grpc");
        String topic = o.str("topic");
        ClientServiceProvider p = ClientServiceProvider.loadService();
        ClientConfiguration cfg = ClientConfiguration.newBuilder()
            .setEndpoints(o.str("endpoint"))
            .enableSsl(false)
            .setRequestTimeout(Duration.ofSeconds(5))
            .build();
        Producer producer;
        try {
            producer = p.newProducerBuilder().setClientConfiguration(cfg).setTopics(topic)
                .setTransactionChecker(view -> {
                    String key = view.getKeys().isEmpty() ? "" : view.getKeys().iterator().next();
                    Common.emit(Common.obj("event", "checked", "key", key, "id", view.getMessageId().toString(),
                        "atMs", System.currentTimeMillis()));
                    return key.equals("tx-orphan-commit") ? TransactionResolution.COMMIT : TransactionResolution.ROLLBACK;
                }).build();
        } catch (Exception e) {
            Common.fail("producer-start", e);
            return;
        }
        int count = o.integer("count");
        try {
            for (int i = 0; i < count; i++) {
                send(p, producer, p.newMessageBuilder().setTopic(topic).setKeys("n" + i).setTag("TagA")
                    .setBody(("body-" + i).getBytes(StandardCharsets.UTF_8)).build(), "n" + i);
            }
            send(p, producer, p.newMessageBuilder().setTopic(topic).setKeys("nack-me").setTag("TagA")
                .setBody("again".getBytes(StandardCharsets.UTF_8)).build(), "nack-me");
            send(p, producer, p.newMessageBuilder().setTopic(topic).setKeys("fifo").setTag("TagA")
                .setMessageGroup("group-1").setBody("fifo".getBytes(StandardCharsets.UTF_8)).build(), "fifo");
            long due = System.currentTimeMillis() + o.num("delay-ms");
            Common.emit(Common.obj("event", "delay", "dueMs", due));
            send(p, producer, p.newMessageBuilder().setTopic(topic).setKeys("delayed").setTag("TagA")
                .setDeliveryTimestamp(due).setBody("later".getBytes(StandardCharsets.UTF_8)).build(), "delayed");
            for (String k : new String[] {"tx-commit", "tx-rollback", "tx-orphan-commit", "tx-orphan-rollback"}) {
                Transaction tx = producer.beginTransaction();
                SendReceipt r = producer.send(p.newMessageBuilder().setTopic(topic).setKeys(k).setTag("TagA")
                    .setBody(k.getBytes(StandardCharsets.UTF_8)).build(), tx);
                Common.emit(Common.obj("event", "sent", "key", k, "id", r.getMessageId().toString(),
                    "atMs", System.currentTimeMillis()));
                if (k.equals("tx-commit")) {
                    tx.commit();
                } else if (k.equals("tx-rollback")) {
                    tx.rollback();
                } // the orphans stay open: the broker asks the checker
            }
        } catch (Exception e) {
            Common.fail("send", e);
        }
        SimpleConsumer consumer;
        try {
            consumer = p.newSimpleConsumerBuilder().setClientConfiguration(cfg).setConsumerGroup(o.str("group"))
                .setAwaitDuration(Duration.ofSeconds(5))
                .setSubscriptionExpressions(Collections.singletonMap(topic, new FilterExpression("*", FilterExpressionType.TAG)))
                .build();
        } catch (Exception e) {
            Common.fail("consumer-start", e);
            return;
        }
        Set<String> nacked = new HashSet<>();
        long lastNew = System.currentTimeMillis();
        Map<String, Integer> seen = new HashMap<>();
        while (System.currentTimeMillis() - lastNew < o.num("linger-ms")) {
            List<MessageView> views;
            try {
                views = consumer.receive(16, Duration.ofSeconds(10));
            } catch (Exception e) {
                Common.emit(Common.obj("event", "receive-error", "error", Common.describe(e)));
                Thread.sleep(200);
                continue;
            }
            for (MessageView v : views) {
                String key = v.getKeys().isEmpty() ? "" : v.getKeys().iterator().next();
                ByteBuffer b = v.getBody();
                byte[] body = new byte[b.remaining()];
                b.get(body);
                Common.emit(Common.obj("event", "received", "key", key, "id", v.getMessageId().toString(),
                    "tag", v.getTag().orElse(""), "attempt", v.getDeliveryAttempt(),
                    "body", new String(body, StandardCharsets.UTF_8), "recvMs", System.currentTimeMillis(),
                    "group", v.getMessageGroup().orElse("")));
                seen.merge(key, 1, Integer::sum);
                lastNew = System.currentTimeMillis();
                if (key.equals("nack-me") && nacked.add(key)) {
                    continue; // not acked: must come back after the invisible time
                }
                try {
                    consumer.ack(v);
                    Common.emit(Common.obj("event", "acked", "key", key));
                } catch (Exception e) {
                    Common.emit(Common.obj("event", "ack-error", "key", key, "error", Common.describe(e)));
                }
            }
        }
        Common.emit(Common.obj("event", "done"));
        consumer.close();
        producer.close();
        Common.halt(0);
    }

    private static void send(ClientServiceProvider p, Producer producer, Message m, String key) throws Exception {
        SendReceipt r = producer.send(m);
        Common.emit(Common.obj("event", "sent", "key", key, "id", r.getMessageId().toString()));
    }
}
