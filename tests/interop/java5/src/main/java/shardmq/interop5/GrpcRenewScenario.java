package shardmq.interop5;

import shardmq.interop.common.Common;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.ConsumeResult;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.PushConsumer;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;

/**
 * Lease renewal for a 5.x PushConsumer (rocketmq-client-java), one JVM:
 * {@code grpc-renew --endpoint HOST:PORT --topic T --group G --sleep-ms 40000}.
 * Sends "slow" and "fast"; a PushConsumer (which receives with auto_renew
 * and no invisible time) takes "fast" at once and sleeps --sleep-ms in its
 * listener on "slow" before SUCCESS — far longer than the broker's
 * invisible time for such receives. Then the push consumer closes and a
 * SimpleConsumer of the same group receives for --probe-ms: whatever it
 * gets was not acked (or not kept invisible) by the broker.
 * Events: sent {key}, received {key, attempt, atMs}, consumed {key, atMs},
 * probe {key, attempt}, done.
 */
final class GrpcRenewScenario {
    static void main(String[] argv) throws Exception {
        Common.Opts o = new Common.Opts("usage: grpc-renew --endpoint E --topic T --group G [--sleep-ms 40000]",
            argv, Common.spec("endpoint", null, "namesrv", "", "topic", null, "group", null, "sleep-ms", "40000",
                "probe-ms", "10000", "timeout-ms", "150000"));
        Common.startWatchdog(o.num("timeout-ms"), "grpc-renew");
        String topic = o.str("topic");
        ClientServiceProvider p = ClientServiceProvider.loadService();
        ClientConfiguration cfg = ClientConfiguration.newBuilder().setEndpoints(o.str("endpoint"))
            .enableSsl(false).setRequestTimeout(Duration.ofSeconds(5)).build();
        FilterExpression all = new FilterExpression("*", FilterExpressionType.TAG);
        CountDownLatch slowDone = new CountDownLatch(1);
        PushConsumer push;
        try {
            push = p.newPushConsumerBuilder().setClientConfiguration(cfg).setConsumerGroup(o.str("group"))
                .setSubscriptionExpressions(Collections.singletonMap(topic, all))
                .setMessageListener(v -> {
                    String key = key(v);
                    Common.emit(Common.obj("event", "received", "key", key, "attempt", v.getDeliveryAttempt(),
                        "atMs", System.currentTimeMillis()));
                    if (key.equals("slow")) {
                        try {
                            Thread.sleep(o.num("sleep-ms"));
                        } catch (InterruptedException e) {
                            return ConsumeResult.FAILURE;
                        }
                    }
                    Common.emit(Common.obj("event", "consumed", "key", key, "atMs", System.currentTimeMillis()));
                    if (key.equals("slow")) {
                        slowDone.countDown();
                    }
                    return ConsumeResult.SUCCESS;
                }).build();
        } catch (Exception e) {
            Common.fail("push-start", e);
            return;
        }
        try (Producer producer = p.newProducerBuilder().setClientConfiguration(cfg).setTopics(topic).build()) {
            for (String k : new String[] {"slow", "fast"}) {
                producer.send(p.newMessageBuilder().setTopic(topic).setKeys(k).setTag("TagA")
                    .setBody(k.getBytes(StandardCharsets.UTF_8)).build());
                Common.emit(Common.obj("event", "sent", "key", k));
            }
        } catch (Exception e) {
            Common.fail("send", e);
        }
        if (!slowDone.await(o.num("sleep-ms") + 60_000, TimeUnit.MILLISECONDS)) {
            Common.fail("slow", new IllegalStateException("the slow message was not consumed"));
        }
        Thread.sleep(2000); // the push consumer's ack goes out
        push.close();
        try (SimpleConsumer probe = p.newSimpleConsumerBuilder().setClientConfiguration(cfg)
            .setConsumerGroup(o.str("group")).setAwaitDuration(Duration.ofSeconds(5))
            .setSubscriptionExpressions(Collections.singletonMap(topic, all)).build()) {
            long end = System.currentTimeMillis() + o.num("probe-ms");
            while (System.currentTimeMillis() < end) {
                List<MessageView> views = probe.receive(16, Duration.ofSeconds(15));
                for (MessageView v : views) {
                    Common.emit(Common.obj("event", "probe", "key", key(v), "attempt", v.getDeliveryAttempt()));
                    probe.ack(v);
                }
            }
        } catch (Exception e) {
            Common.fail("probe", e);
        }
        Common.emit(Common.obj("event", "done"));
        Common.halt(0);
    }

    private static String key(MessageView v) {
        return v.getKeys().isEmpty() ? "" : v.getKeys().iterator().next();
    }
}
