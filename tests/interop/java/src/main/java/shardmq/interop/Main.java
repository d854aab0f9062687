package shardmq.interop;

import shardmq.interop.common.Common;

/** Entry point: {@code java -jar shardmq-interop-java.jar producer|consumer|txproducer|acl|query|trace --namesrv ... }. */
public final class Main {
    public static void main(String[] argv) throws Exception {
        if (argv.length == 0) {
            Common.emit(Common.obj("event", "error", "stage", "args", "error", "usage: producer|consumer|txproducer|acl|query|trace [options]"));
            Runtime.getRuntime().halt(2);
        }
        String[] rest = java.util.Arrays.copyOfRange(argv, 1, argv.length);
        switch (argv[0]) {
            case "producer":
                ProducerScenario.main(rest);
                break;
            case "consumer":
                ConsumerScenario.main(rest);
                break;
            case "txproducer":
                TxProducerScenario.main(rest);
                break;
            case "acl":
                AclScenario.main(rest);
                break;
            case "query":
                QueryScenario.main(rest);
                break;
            case "trace":
                TraceScenario.main(rest);
                break;
            default:
                Common.emit(Common.obj("event", "error", "stage", "args", "error", "unknown program " + argv[0]));
                Runtime.getRuntime().halt(2);
        }
    }
}
