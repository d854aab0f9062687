package shardmq.interop5;

import shardmq.interop.common.Common;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import org.apache.rocketmq.client.ClientConfig;
import org.apache.rocketmq.client.impl.MQClientAPIImpl;
import org.apache.rocketmq.client.impl.MQClientManager;
import org.apache.rocketmq.client.impl.factory.MQClientInstance;
import org.apache.rocketmq.common.message.MessageConst;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageRequestMode;
import org.apache.rocketmq.remoting.protocol.RemotingCommand;
import org.apache.rocketmq.remoting.protocol.header.ExtraInfoUtil;
import org.apache.rocketmq.remoting.protocol.route.BrokerData;
import org.apache.rocketmq.remoting.protocol.route.QueueData;
import org.apache.rocketmq.remoting.protocol.route.TopicRouteData;

/**
 * One started 5.x MQClientInstance (the object every 5.x producer and
 * consumer runs on) with an {@link Rpc} hook, for the programs that talk to a
 * broker directly through MQClientAPIImpl: the topic route, the master
 * address of each broker entry, SET_MESSAGE_REQUEST_MODE, and the JSON form
 * of a popped message.
 */
final class Client5 {
    final MQClientInstance instance;
    final MQClientAPIImpl api;
    final Rpc rpc;
    final String namesrv;

    Client5(String namesrv, String instanceName, Rpc rpc) throws Exception {
        this.namesrv = namesrv;
        this.rpc = rpc;
        ClientConfig cc = new ClientConfig();
        cc.setNamesrvAddr(namesrv);
        cc.setInstanceName(instanceName + "-" + ProcessHandle.current().pid());
        cc.setVipChannelEnabled(false);
        this.instance = MQClientManager.getInstance().getOrCreateMQClientInstance(cc, rpc);
        this.instance.start();
        this.api = instance.getMQClientAPIImpl();
    }

    TopicRouteData route(String topic, long timeoutMs) throws Exception {
        return api.getTopicRouteInfoFromNameServer(topic, timeoutMs);
    }

    /** brokerName → master address (brokerId 0) of the topic's route, in route order. */
    static Map<String, String> masters(TopicRouteData route) {
        Map<String, String> m = new LinkedHashMap<>();
        for (BrokerData bd : route.getBrokerDatas()) {
            String addr = bd.getBrokerAddrs().get(0L);
            if (addr != null) {
                m.put(bd.getBrokerName(), addr);
            }
        }
        return m;
    }

    static Map<String, Object> routeJson(TopicRouteData route) {
        List<Object> brokers = new ArrayList<>();
        for (Map.Entry<String, String> e : masters(route).entrySet()) {
            brokers.add(Common.obj("name", e.getKey(), "addr", e.getValue()));
        }
        List<Object> queues = new ArrayList<>();
        for (QueueData qd : route.getQueueDatas()) {
            queues.add(Common.obj("broker", qd.getBrokerName(), "read", qd.getReadQueueNums(),
                "write", qd.getWriteQueueNums(), "perm", qd.getPerm()));
        }
        return Common.obj("brokers", brokers, "queues", queues);
    }

    /**
     * SET_MESSAGE_REQUEST_MODE (what `mqadmin setConsumeMode` and
     * DefaultMQAdminExt.setMessageRequestMode send) to the master of every
     * broker entry of the topic's route; one result per entry.
     */
    List<Object> setMode(String topic, String group, MessageRequestMode mode, int popShareQueueNum, long timeoutMs)
        throws Exception {
        List<Object> out = new ArrayList<>();
        for (Map.Entry<String, String> e : masters(route(topic, timeoutMs)).entrySet()) {
            Map<String, Object> r = Common.obj("broker", e.getKey(), "addr", e.getValue());
            rpc.forget(Rpc.SET_MESSAGE_REQUEST_MODE);
            try {
                api.setMessageRequestMode(e.getValue(), topic, group, mode, popShareQueueNum, timeoutMs);
                r.put("ok", true);
            } catch (Exception ex) {
                r.put("ok", false);
                r.put("error", Common.describe(ex));
            }
            RemotingCommand resp = rpc.last(Rpc.SET_MESSAGE_REQUEST_MODE);
            if (resp != null) {
                r.put("code", resp.getCode());
                r.put("remark", resp.getRemark());
            }
            out.add(r);
        }
        return out;
    }

    void shutdown() {
        try {
            instance.shutdown();
        } catch (RuntimeException e) {
            Common.log("client shutdown: " + e);
        }
    }

    /** User properties the producers set (tests/interop/java ProducerScenario). */
    static final String[] USER_PROPS = {"seq", "prefix", "color", "orderKey", "orderSeq"};
    /** Broker- or client-set properties worth seeing on a popped message. */
    static final String[] SYS_PROPS = {"RETRY_TOPIC", "ORIGIN_MESSAGE_ID", "REAL_TOPIC", "REAL_QID",
        "RECONSUME_TIME", "MAX_RECONSUME_TIMES", "DELAY", "TIMER_DELIVER_MS", "TIMER_OUT_MS",
        MessageConst.PROPERTY_FIRST_POP_TIME, "CONSUME_START_TIME", "INNER_NUM", "INNER_BASE"};

    /** JSON of one popped message, with its POP_CK handle and the handle's fields as the client parses them. */
    static Map<String, Object> msgJson(MessageExt m) {
        Map<String, Object> props = new TreeMap<>();
        for (String name : USER_PROPS) {
            String v = m.getUserProperty(name);
            if (v != null && !v.isEmpty()) {
                props.put(name, v);
            }
        }
        Map<String, Object> sys = new TreeMap<>();
        for (String name : SYS_PROPS) {
            String v = m.getProperty(name);
            if (v != null) {
                sys.put(name, v);
            }
        }
        String ck = m.getProperty(MessageConst.PROPERTY_POP_CK);
        Map<String, Object> rec = Common.obj(
            "topic", m.getTopic(),
            "body", m.getBody() == null ? null : new String(m.getBody(), StandardCharsets.UTF_8),
            "keys", m.getKeys(),
            "tags", m.getTags(),
            "props", props,
            "sys", sys,
            "msgId", m.getMsgId(),
            "uniqKey", m.getProperty(MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX),
            "brokerName", m.getBrokerName(),
            "queueId", m.getQueueId(),
            "queueOffset", m.getQueueOffset(),
            "reconsumeTimes", m.getReconsumeTimes(),
            "storeMs", m.getStoreTimestamp(),
            "bornMs", m.getBornTimestamp(),
            "popCk", ck);
        if (ck != null) {
            rec.put("ck", handleJson(ck));
        }
        return rec;
    }

    /** The fields of a POP_CK handle ("extraInfo"), parsed with the client's ExtraInfoUtil. */
    static Map<String, Object> handleJson(String ck) {
        Map<String, Object> h = new TreeMap<>();
        try {
            String[] s = ExtraInfoUtil.split(ck);
            h.put("ckQueueOffset", ExtraInfoUtil.getCkQueueOffset(s));
            h.put("popTime", ExtraInfoUtil.getPopTime(s));
            h.put("invisibleTime", ExtraInfoUtil.getInvisibleTime(s));
            h.put("reviveQid", ExtraInfoUtil.getReviveQid(s));
            h.put("retry", ExtraInfoUtil.getRetry(s));
            h.put("brokerName", ExtraInfoUtil.getBrokerName(s));
            h.put("queueId", ExtraInfoUtil.getQueueId(s));
            h.put("queueOffset", ExtraInfoUtil.getQueueOffset(s));
        } catch (RuntimeException e) {
            h.put("parseError", Common.describe(e));
        }
        return h;
    }
}
