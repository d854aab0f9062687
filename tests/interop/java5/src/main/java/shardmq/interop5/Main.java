package shardmq.interop5;

import shardmq.interop.common.Common;

import org.apache.rocketmq.common.message.MessageRequestMode;

/**
 * Entry point of the POP scenario programs (rocketmq-client 5.x, remoting):
 * {@code java -jar shardmq-interop-java5.jar pop-consume|raw|set-mode --namesrv ...}, and of the
 * 5.x gRPC client ones (rocketmq-client-java): {@code grpc} (GrpcScenario),
 * {@code grpc-send|grpc-simple|grpc-push} (GrpcMoreScenarios).
 * Messages are produced with the 4.9.8 producer of tests/interop/java.
 */
public final class Main {
    public static void main(String[] argv) throws Exception {
        if (argv.length == 0) {
            Common.emit(Common.obj("event", "error", "stage", "args", "error", "usage: pop-consume|raw|set-mode|grpc|grpc-send|grpc-simple|grpc-push [options]"));
            Runtime.getRuntime().halt(2);
        }
        String[] rest = java.util.Arrays.copyOfRange(argv, 1, argv.length);
        switch (argv[0]) {
            case "pop-consume":
                PopConsumerScenario.main(rest);
                break;
            case "raw":
                RawScenario.main(rest);
                break;
            case "set-mode":
                setMode(rest);
                break;
            case "grpc":
                GrpcScenario.main(rest);
                break;
            case "grpc-renew":
                GrpcRenewScenario.main(rest);
                break;
            case "grpc-send":
                GrpcMoreScenarios.send(rest);
                break;
            case "grpc-simple":
                GrpcMoreScenarios.simple(rest);
                break;
            case "grpc-push":
                GrpcMoreScenarios.push(rest);
                break;
            default:
                Common.emit(Common.obj("event", "error", "stage", "args", "error", "unknown program " + argv[0]));
                Runtime.getRuntime().halt(2);
        }
    }

    /** SET_MESSAGE_REQUEST_MODE to every master of the topic's route; exit 1 unless all answered SUCCESS. */
    private static void setMode(String[] argv) throws Exception {
        Common.Opts o = new Common.Opts("usage: set-mode --namesrv NS --topic T --group G [--mode POP|PULL] "
            + "[--pop-share-queue-num 0] [--timeout-ms 30000]", argv, Common.spec("namesrv", null, "topic", null,
            "group", null, "mode", "POP", "pop-share-queue-num", "0", "timeout-ms", "30000"));
        Common.startWatchdog(o.num("timeout-ms"), "set-mode");
        Client5 c = null;
        java.util.List<Object> res = null;
        try {
            c = new Client5(o.str("namesrv"), "set-mode", new Rpc(false));
            res = c.setMode(o.str("topic"), o.str("group"), MessageRequestMode.valueOf(o.str("mode")),
                o.integer("pop-share-queue-num"), 5000);
        } catch (Exception e) {
            Common.fail("set-mode", e); // e.g. no route for the topic
        }
        boolean ok = !res.isEmpty();
        for (Object r : res) {
            ok &= Boolean.TRUE.equals(((java.util.Map<?, ?>) r).get("ok"));
        }
        Common.emit(Common.obj("event", "mode", "results", res));
        if (!ok) {
            Common.emit(Common.obj("event", "error", "stage", "set-mode", "error",
                res.isEmpty() ? "topic has no master in its route" : "not every broker answered SUCCESS"));
        }
        Common.emit(Common.obj("event", "done"));
        c.shutdown();
        Common.halt(ok ? 0 : 1);
    }
}
