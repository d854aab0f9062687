package shardmq.interop5;

import shardmq.interop.common.Common;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientConfigurationBuilder;
import org.apache.rocketmq.client.apis.StaticSessionCredentialsProvider;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.ConsumeResult;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.PushConsumer;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.MessageBuilder;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;

/**
 * Building blocks of the 5.x gRPC scenarios of tests/interop_java_grpc_more.rs
 * (rocketmq-client-java, unmodified), one program per role; the Rust test
 * composes them and checks the events (JSON lines).
 *
 * <ul>
 * <li>{@code grpc-send --endpoint E --topic T --count N [--prefix p] [--message-groups G]}: a Producer sends
 * N messages one at a time (each after the previous one's receipt). With G &gt; 0 they are FIFO messages,
 * message i in message group {@code <prefix>-mg<i % G>} with sequence number i / G (interleaved groups), key
 * {@code <prefix>-g<i % G>-<i / G>}; else key {@code <prefix>-<i>}. Events: sent {key, id, mgroup, seq}, done.
 * <li>{@code grpc-simple --endpoint E --topic T --group G}: a SimpleConsumer receives (batch --batch, invisible
 * time --invisible-ms, long poll --await-ms) and acks each message at once, except: keys of --nack-keys on their
 * first delivery; with --hold-key K, K on its first delivery and, in that same receive, every later message of
 * K's message group (a FIFO consumer that fails K must not ack what follows it); any message once --ack-limit
 * messages were acked. Stops --linger-ms after --until-acked distinct keys were acked or --until-received
 * distinct keys received (whichever is given and first met). Events: receive {batch (receive call number),
 * count, askedMs, ms} per receive call, received {key, id, attempt, recvMs, batch, mgroup, body, topic},
 * acked {key, batch}, unacked {key, batch, why}, receive-error, ack-error, complete, done.
 * <li>{@code grpc-push --endpoint E --topic T --group G}: a PushConsumer whose listener answers FAILURE for the
 * keys of --fail-always on every delivery and for those of --fail-once on their first one, SUCCESS otherwise.
 * Runs until stdin closes. Events: started, consumed {key, id, attempt, recvMs, result, mgroup, body}, done
 * {maxAttempts, fifo, retryPolicy: what the client took from the broker's Telemetry settings}.
 * </ul>
 * --timeout-ms: the watchdog (exit 3). --ak/--sk: sign every call as that ACL account. --ssl true: TLS
 * (the client trusts any server certificate, as rocketmq-client-java does).
 */
final class GrpcMoreScenarios {
    private GrpcMoreScenarios() {}

    private static Common.Opts opts(String program, String[] argv, String... extra) {
        String[] common = {"endpoint", null, "namesrv", "", "topic", null, "group", "", "timeout-ms", "60000",
            "ak", "", "sk", "", "ssl", "false"};
        String[] all = Arrays.copyOf(common, common.length + extra.length);
        System.arraycopy(extra, 0, all, common.length, extra.length);
        Common.Opts o = new Common.Opts("usage: " + program + " --endpoint HOST:PORT --topic T [options]: see "
            + "GrpcMoreScenarios.java", argv, Common.spec(all));
        Common.startWatchdog(o.num("timeout-ms"), program);
        return o;
    }

    private static ClientConfiguration config(Common.Opts o) {
        ClientConfigurationBuilder b = ClientConfiguration.newBuilder().setEndpoints(o.str("endpoint"))
            .enableSsl(o.str("ssl").equals("true")).setRequestTimeout(Duration.ofSeconds(5));
        if (!o.str("ak").isEmpty()) {
            // Every call signed (authorization: MQv2-HMAC-SHA1 ...).
            b.setCredentialProvider(new StaticSessionCredentialsProvider(o.str("ak"), o.str("sk")));
        }
        return b.build();
    }

    private static Set<String> keySet(String csv) {
        Set<String> s = new HashSet<>();
        for (String k : csv.split(",")) {
            if (!k.isEmpty()) {
                s.add(k);
            }
        }
        return s;
    }

    private static Map<String, FilterExpression> all(String topic) {
        return Collections.singletonMap(topic, new FilterExpression("*", FilterExpressionType.TAG));
    }

    private static String key(MessageView v) {
        return v.getKeys().isEmpty() ? "" : v.getKeys().iterator().next();
    }

    /** The fields every delivery event carries. */
    private static Map<String, Object> delivery(String event, MessageView v) {
        ByteBuffer b = v.getBody();
        byte[] body = new byte[b.remaining()];
        b.get(body);
        return Common.obj("event", event, "key", key(v), "id", v.getMessageId().toString(),
            "attempt", v.getDeliveryAttempt(), "recvMs", System.currentTimeMillis(),
            "mgroup", v.getMessageGroup().orElse(""), "body", new String(body, StandardCharsets.UTF_8),
            "topic", v.getTopic());
    }

    static void send(String[] argv) throws Exception {
        Common.Opts o = opts("grpc-send", argv, "count", "10", "prefix", "m", "message-groups", "0");
        String topic = o.str("topic");
        String prefix = o.str("prefix");
        int groups = o.integer("message-groups");
        ClientServiceProvider p = ClientServiceProvider.loadService();
        Producer producer = null;
        try {
            producer = p.newProducerBuilder().setClientConfiguration(config(o)).setTopics(topic).build();
        } catch (Exception e) {
            Common.fail("producer-start", e);
        }
        for (int i = 0; i < o.integer("count"); i++) {
            String key = groups > 0 ? prefix + "-g" + (i % groups) + "-" + (i / groups) : prefix + "-" + i;
            String mgroup = groups > 0 ? prefix + "-mg" + (i % groups) : "";
            MessageBuilder m = p.newMessageBuilder().setTopic(topic).setKeys(key).setTag("TagA")
                .setBody(("body of " + key).getBytes(StandardCharsets.UTF_8));
            if (groups > 0) {
                m.setMessageGroup(mgroup);
            }
            try {
                SendReceipt r = producer.send(m.build());
                Common.emit(Common.obj("event", "sent", "key", key, "id", r.getMessageId().toString(),
                    "mgroup", mgroup, "seq", groups > 0 ? i / groups : i));
            } catch (Exception e) {
                Common.fail("send", e, "key", key);
            }
        }
        Common.emit(Common.obj("event", "done"));
        producer.close();
        Common.halt(0);
    }

    static void simple(String[] argv) throws Exception {
        Common.Opts o = opts("grpc-simple", argv, "invisible-ms", "10000", "await-ms", "5000", "batch", "16",
            "nack-keys", "", "hold-key", "", "ack-limit", "-1", "until-acked", "-1", "until-received", "-1",
            "linger-ms", "0");
        SimpleConsumer consumer = null;
        try {
            consumer = ClientServiceProvider.loadService().newSimpleConsumerBuilder()
                .setClientConfiguration(config(o)).setConsumerGroup(o.str("group"))
                .setAwaitDuration(Duration.ofMillis(o.num("await-ms")))
                .setSubscriptionExpressions(all(o.str("topic"))).build();
        } catch (Exception e) {
            Common.fail("consumer-start", e);
        }
        Set<String> nackKeys = keySet(o.str("nack-keys"));
        String holdKey = o.str("hold-key");
        long ackLimit = o.num("ack-limit");
        long untilAcked = o.num("until-acked");
        long untilReceived = o.num("until-received");
        Set<String> acked = new HashSet<>();
        Set<String> received = new HashSet<>();
        Set<String> nacked = new HashSet<>();
        boolean held = false;
        long acks = 0;
        long stopAt = Long.MAX_VALUE;
        int batch = 0;
        Duration invisible = Duration.ofMillis(o.num("invisible-ms"));
        while (System.currentTimeMillis() < stopAt) {
            List<MessageView> views;
            long asked = System.currentTimeMillis();
            try {
                views = consumer.receive(o.integer("batch"), invisible);
            } catch (Exception e) {
                Common.emit(Common.obj("event", "receive-error", "error", Common.describe(e)));
                Thread.sleep(200);
                continue;
            }
            batch++;
            Common.emit(Common.obj("event", "receive", "batch", batch, "count", views.size(), "askedMs", asked,
                "ms", System.currentTimeMillis() - asked));
            String heldGroup = null;
            for (MessageView v : views) {
                Map<String, Object> ev = delivery("received", v);
                ev.put("batch", batch);
                Common.emit(ev);
                String key = key(v);
                String mgroup = v.getMessageGroup().orElse("");
                received.add(key);
                String why = null;
                if (nackKeys.contains(key) && nacked.add(key)) {
                    why = "nack-key";
                } else if (!held && key.equals(holdKey)) {
                    held = true;
                    heldGroup = mgroup;
                    why = "hold-key";
                } else if (heldGroup != null && heldGroup.equals(mgroup)) {
                    why = "after-hold-key";
                } else if (ackLimit >= 0 && acks >= ackLimit) {
                    why = "ack-limit";
                }
                if (why != null) {
                    Common.emit(Common.obj("event", "unacked", "key", key, "batch", batch, "why", why));
                    continue;
                }
                try {
                    consumer.ack(v);
                    acks++;
                    acked.add(key);
                    Common.emit(Common.obj("event", "acked", "key", key, "batch", batch));
                } catch (Exception e) {
                    Common.emit(Common.obj("event", "ack-error", "key", key, "error", Common.describe(e)));
                }
            }
            boolean met = (untilAcked >= 0 && acked.size() >= untilAcked)
                || (untilReceived >= 0 && received.size() >= untilReceived);
            if (met && stopAt == Long.MAX_VALUE) {
                Common.emit(Common.obj("event", "complete", "acked", acked.size(), "received", received.size()));
                stopAt = System.currentTimeMillis() + o.num("linger-ms");
            }
        }
        Common.emit(Common.obj("event", "done"));
        consumer.close();
        Common.halt(0);
    }

    /** A public method of a client class that is not public itself. */
    private static Object call(Object target, String method) throws ReflectiveOperationException {
        java.lang.reflect.Method m = target.getClass().getMethod(method);
        m.setAccessible(true);
        return m.invoke(target);
    }

    static void push(String[] argv) throws Exception {
        Common.Opts o = opts("grpc-push", argv, "fail-once", "", "fail-always", "");
        Set<String> failOnce = keySet(o.str("fail-once"));
        Set<String> failAlways = keySet(o.str("fail-always"));
        Set<String> failed = ConcurrentHashMap.newKeySet();
        PushConsumer consumer = null;
        try {
            consumer = ClientServiceProvider.loadService().newPushConsumerBuilder()
                .setClientConfiguration(config(o)).setConsumerGroup(o.str("group"))
                .setSubscriptionExpressions(all(o.str("topic")))
                .setMessageListener(v -> {
                    String key = key(v);
                    boolean fail = failAlways.contains(key) || (failOnce.contains(key) && failed.add(key));
                    ConsumeResult r = fail ? ConsumeResult.FAILURE : ConsumeResult.SUCCESS;
                    Map<String, Object> ev = delivery("consumed", v);
                    ev.put("result", r.toString());
                    Common.emit(ev);
                    return r;
                }).build();
        } catch (Exception e) {
            Common.fail("consumer-start", e);
        }
        Common.emit(Common.obj("event", "started"));
        byte[] buf = new byte[256];
        while (System.in.read(buf) >= 0) {
            // runs until the test closes stdin
        }
        // What the client made of the broker's settings (PushConsumerImpl, not part of the API).
        Map<String, Object> done = Common.obj("event", "done");
        try {
            Object policy = call(consumer, "getRetryPolicy");
            done.put("maxAttempts", call(policy, "getMaxAttempts"));
            done.put("retryPolicy", policy.toString());
            done.put("fifo", call(call(consumer, "getPushConsumerSettings"), "isFifo"));
        } catch (ReflectiveOperationException | RuntimeException e) {
            done.put("settingsError", Common.describe(e));
        }
        Common.emit(done);
        // close() can wait for the receives in flight (long polls of up to
        // 20 s): give it a moment, then leave.
        PushConsumer closing = consumer;
        Thread t = new Thread(() -> {
            try {
                closing.close();
            } catch (Exception e) {
                Common.log("close: " + Common.describe(e));
            }
        }, "close");
        t.setDaemon(true);
        t.start();
        t.join(3000);
        Common.halt(0);
    }
}
