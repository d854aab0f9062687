#!/usr/bin/env bash
# Starts Apache RocketMQ 5.5.0 (name server + one broker, jars cached by
# scripts/bench-peers.sh in target/peers/rocketmq-5.5.0/lib) on 127.0.0.1 with
# small heaps, its own ports and a temp store, to run the POP scenario
# programs (tests/interop/java5) against the reference broker:
#
#   scripts/apache-pop-peer.sh start [NS_PORT] [BROKER_PORT]   prints "NS=127.0.0.1:port DIR=..."
#   scripts/apache-pop-peer.sh stop DIR
#   scripts/apache-pop-peer.sh kill9 DIR       SIGKILL the broker (name server stays)
#   scripts/apache-pop-peer.sh restart DIR     start the broker again on the same store
#
# To run tests/interop_java_pop.rs against it:
#   SHARDMQ_INTEROP_PEER_NAMESRV=127.0.0.1:41876 \
#   SHARDMQ_INTEROP_PEER_KILL="scripts/apache-pop-peer.sh kill9 $DIR" \
#   SHARDMQ_INTEROP_PEER_RESTART="scripts/apache-pop-peer.sh restart $DIR" \
#   cargo test --test interop_java_pop -- --test-threads 1
#
# Defaults: name server 41876, broker 41911 (also uses 41909 = port-2, the
# VIP channel, and 41912 = port+1, HA). Extra broker.conf lines can be given
# in $APACHE_EXTRA_CONF (a file). CI does not use it: it is for reference runs.
set -euo pipefail
cd "$(dirname "$0")/.."
RMQ_LIB=${RMQ_LIB:-$PWD/target/peers/rocketmq-5.5.0/lib}
JOPTS=(-server -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow -Xms512m -Xmx512m -XX:MaxDirectMemorySize=1g)
start_broker() { # DIR
    local dir=$1 n
    n=$(find "$dir" -maxdepth 1 -name "broker*.out" | wc -l)
    ROCKETMQ_HOME=$dir/home nohup java "${JOPTS[@]}" -Duser.home="$dir/home" -cp "$RMQ_LIB/*" \
        org.apache.rocketmq.broker.BrokerStartup -c "$dir/broker.conf" >"$dir/broker$n.out" 2>&1 &
    echo $! >"$dir/broker.pid"
    for _ in $(seq 120); do grep -q "boot success" "$dir/broker$n.out" 2>/dev/null && break; sleep 1; done
    grep -q "boot success" "$dir/broker$n.out" || { tail "$dir/broker$n.out" >&2; exit 1; }
    sleep 2 # first registration with the name server
}

case "${1:-}" in
start)
    NSP=${2:-41876}
    BP=${3:-41911}
    [[ -d "$RMQ_LIB" ]] || { echo "no $RMQ_LIB (run scripts/bench-peers.sh once)" >&2; exit 1; }
    DIR=$(mktemp -d /tmp/apache-pop-XXXXXX)
    mkdir -p "$DIR/home/conf" "$DIR/store"
    cat >"$DIR/broker.conf" <<CONF
brokerClusterName=DefaultCluster
brokerName=broker-a
brokerId=0
brokerRole=ASYNC_MASTER
brokerIP1=127.0.0.1
autoCreateTopicEnable=true
autoCreateSubscriptionGroup=true
flushDiskType=SYNC_FLUSH
defaultTopicQueueNums=4
namesrvAddr=127.0.0.1:$NSP
listenPort=$BP
storePathRootDir=$DIR/store
storePathCommitLog=$DIR/store/commitlog
CONF
    [[ -n "${APACHE_EXTRA_CONF:-}" ]] && cat "$APACHE_EXTRA_CONF" >>"$DIR/broker.conf"
    echo "listenPort=$NSP" >"$DIR/namesrv.conf"
    echo "$RMQ_LIB" >"$DIR/lib.path"
    ROCKETMQ_HOME=$DIR/home nohup java "${JOPTS[@]}" -Duser.home="$DIR/home" -cp "$RMQ_LIB/*" org.apache.rocketmq.namesrv.NamesrvStartup \
        -c "$DIR/namesrv.conf" >"$DIR/namesrv.out" 2>&1 &
    echo $! >"$DIR/namesrv.pid"
    for _ in $(seq 60); do grep -q "boot success" "$DIR/namesrv.out" 2>/dev/null && break; sleep 1; done
    grep -q "boot success" "$DIR/namesrv.out" || { tail "$DIR/namesrv.out" >&2; exit 1; }
    start_broker "$DIR"
    echo "NS=127.0.0.1:$NSP BROKER=127.0.0.1:$BP DIR=$DIR"
    ;;
kill9)
    kill -9 "$(cat "$2/broker.pid")"
    while kill -0 "$(cat "$2/broker.pid")" 2>/dev/null; do sleep 0.1; done
    ;;
restart)
    RMQ_LIB=$(cat "$2/lib.path")
    start_broker "$2"
    ;;
stop)
    DIR=$2
    for p in broker namesrv; do
        [[ -f "$DIR/$p.pid" ]] && kill -9 "$(cat "$DIR/$p.pid")" 2>/dev/null || true
    done
    ;;
*)
    echo "usage: $0 start [NS_PORT] [BROKER_PORT] | stop DIR" >&2
    exit 2
    ;;
esac
