#!/usr/bin/env bash
# Starts Apache RocketMQ 5.5.0 (name server + one broker, jars cached by
# scripts/bench-peers.sh in target/peers/rocketmq-5.5.0/lib) on 127.0.0.1 with
# small heaps, its own ports and a temp store, to run the POP scenario
# programs (tests/interop/java5) against the reference broker:
#
#   scripts/apache-pop-peer.sh start [NS_PORT] [BROKER_PORT]   prints "NS=127.0.0.1:port DIR=..."
#   scripts/apache-pop-peer.sh stop DIR
#
# Defaults: name server 41876, broker 41911 (also uses 41909 = port-2, the
# VIP channel, and 41912 = port+1, HA). Extra broker.conf lines can be given
# in $APACHE_EXTRA_CONF (a file). Not used by the tests; reference only.
set -euo pipefail
cd "$(dirname "$0")/.."
RMQ_LIB=${RMQ_LIB:-$PWD/target/peers/rocketmq-5.5.0/lib}
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
    JOPTS=(-server -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow -Xms512m -Xmx512m -XX:MaxDirectMemorySize=1g
        -Duser.home="$DIR/home")
    ROCKETMQ_HOME=$DIR/home nohup java "${JOPTS[@]}" -cp "$RMQ_LIB/*" org.apache.rocketmq.namesrv.NamesrvStartup \
        -c "$DIR/namesrv.conf" >"$DIR/namesrv.out" 2>&1 &
    echo $! >"$DIR/namesrv.pid"
    for _ in $(seq 60); do grep -q "boot success" "$DIR/namesrv.out" 2>/dev/null && break; sleep 1; done
    grep -q "boot success" "$DIR/namesrv.out" || { tail "$DIR/namesrv.out" >&2; exit 1; }
    ROCKETMQ_HOME=$DIR/home nohup java "${JOPTS[@]}" -cp "$RMQ_LIB/*" org.apache.rocketmq.broker.BrokerStartup \
        -c "$DIR/broker.conf" >"$DIR/broker.out" 2>&1 &
    echo $! >"$DIR/broker.pid"
    for _ in $(seq 120); do grep -q "boot success" "$DIR/broker.out" 2>/dev/null && break; sleep 1; done
    grep -q "boot success" "$DIR/broker.out" || { tail "$DIR/broker.out" >&2; exit 1; }
    sleep 2 # first registration with the name server
    echo "NS=127.0.0.1:$NSP BROKER=127.0.0.1:$BP DIR=$DIR"
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
