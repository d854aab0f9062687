#!/usr/bin/env bash
# Reports how this host compares with tuning/shardmq-tuning.conf. Runs
# unprivileged (reads /proc, /sys and ulimit only). Every setting gets one
# line: current value, recommended value, OK / WARN / FAIL / n/a, and for
# every WARN or FAIL the command that fixes it.
#
# Exit status: 1 when any FAIL (the broker will not start or will run out of
# file handles: memlock < 512 KiB, nofile < 65536, io_uring disabled, kernel
# older than 5.8), 0 otherwise (WARNs included), 2 on a usage error.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

usage() {
    cat <<EOF
usage: $0 [--data-dir DIR] [--shards N] [--json] [--conf FILE]

  --data-dir DIR  the broker's storePathRootDir (default ./data); its block
                  device is the one whose I/O scheduler is checked
  --shards N      shards the broker will run (shardCount; default: one per
                  CPU, as shardmq does). Shard k is pinned to CPU k, so
                  CPUs N.. are the housekeeping CPUs that should take IRQs
  --json          machine-readable output
  --conf FILE     settings file (default $here/shardmq-tuning.conf)
EOF
}

data_dir=./data json=0 shards=0 conf=$here/shardmq-tuning.conf
while (($#)); do
    case $1 in
        --data-dir) data_dir=${2:?--data-dir needs a directory}; shift ;;
        --data-dir=*) data_dir=${1#*=} ;;
        --shards) shards=${2:?--shards needs a number}; shift ;;
        --shards=*) shards=${1#*=} ;;
        --json) json=1 ;;
        --conf) conf=${2:?--conf needs a file}; shift ;;
        --conf=*) conf=${1#*=} ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
    shift
done
if ! is_uint "$shards"; then
    echo "--shards: not a number: $shards" >&2
    exit 2
fi
load_conf "$conf" || exit 2

SUDO='sudo '
((EUID == 0)) && SUDO=''
ncpu=$(online_cpus)
((shards == 0 || shards > ncpu)) && shards=$ncpu
# shardmq pins shard k to CPU k (glommio Placement::Fixed(k % cores)).
if ((shards > 1)); then shard_cpus="0-$((shards - 1))"; else shard_cpus=0; fi
if ((shards < ncpu)); then
    if ((shards == ncpu - 1)); then house_cpus=$shards; else house_cpus="$shards-$((ncpu - 1))"; fi
else
    house_cpus=''
fi
resolve_data_device "$data_dir"
# Paths as the user typed them (tuning/apply.sh), for copy-paste.
shown=$(dirname "$0")
apply_hint="${SUDO}$shown/apply.sh --persist $data_dir"

R_NAME=() R_CUR=() R_REC=() R_STATUS=() R_SEV=() R_FIX=() R_NOTE=()
# report NAME CURRENT RECOMMENDED STATUS SEVERITY FIX NOTE
report() {
    R_NAME+=("$1") R_CUR+=("$2") R_REC+=("$3") R_STATUS+=("$4") R_SEV+=("$5") R_FIX+=("$6") R_NOTE+=("$7")
}

# bracketed VALUE: "always [madvise] never" -> madvise
bracketed() {
    if [[ $1 =~ \[([^]]+)\] ]]; then echo "${BASH_REMATCH[1]}"; else echo "$1"; fi
}

check_kernel() { # NAME REC ACCEPT SEV
    local cur
    cur=$(uname -r)
    if version_ge "$cur" "$2"; then
        report "kernel.version" "$cur" ">= $2" OK "$4" "" "io_uring as glommio uses it"
    else
        report "kernel.version" "$cur" ">= $2" "$4" "$4" "upgrade the kernel to $2 or newer" "glommio needs io_uring of Linux $2+"
    fi
}

check_io_uring_disabled() { # NAME REC ACCEPT SEV
    local cur grp fix="${SUDO}sysctl -w kernel.io_uring_disabled=0"
    if ! cur=$(sysctl_get kernel.io_uring_disabled); then
        report "$1" "n/a" "$2" "n/a" "$4" "" "no such sysctl (kernel < 6.6): io_uring cannot be switched off"
        return
    fi
    case $cur in
        0) report "$1" "$cur" "$2" OK "$4" "" "io_uring enabled for everyone" ;;
        1)
            grp=$(sysctl_get kernel.io_uring_group) || grp='?'
            report "$1" "$cur" "$2" WARN "$4" "$fix" "io_uring only for CAP_SYS_ADMIN and group $grp (kernel.io_uring_group): run the broker in that group or enable it"
            ;;
        *) report "$1" "$cur" "$2" "$4" "$4" "$fix" "io_uring is disabled: glommio cannot start" ;;
    esac
}

check_sysctl() { # NAME REC ACCEPT SEV
    local cur want=${2//,/ } fix
    if ! cur=$(sysctl_get "$1"); then
        report "$1" "n/a" "$(accept_text "$3" "$2")" "n/a" "$4" "" "$(sysctl_path "$1") does not exist here"
        return
    fi
    if [[ $3 == special ]]; then
        check_io_uring_disabled "$@"
        return
    fi
    if accept_ok "$3" "$2" "$cur"; then
        report "$1" "$cur" "$(accept_text "$3" "$2")" OK "$4" "" ""
    else
        if [[ $want == *' '* ]]; then fix="${SUDO}sysctl -w '$1=$want'"; else fix="${SUDO}sysctl -w $1=$want"; fi
        report "$1" "$cur" "$(accept_text "$3" "$2")" "$4" "$4" "$fix" ""
    fi
}

check_nofile() { # NAME REC ACCEPT SEV
    local soft hard min=${3#min:} st fix note
    soft=$(ulimit -Sn) hard=$(ulimit -Hn)
    fix="ulimit -n $2 (in the shell that starts shardmq; above the hard limit $hard only as root with CAP_SYS_RESOURCE); systemd: LimitNOFILE=$2; persistent: $apply_hint"
    note="soft limit counts: shardmq does not raise it (segments, 256 consume-queue handles per shard, one per connection)"
    if [[ $soft == unlimited ]] || (($(num_cmp "$soft" "$2") >= 0)); then
        st=OK fix=''
    elif (($(num_cmp "$soft" "$min") < 0)); then
        st=$4
    else
        st=WARN
    fi
    report "ulimit.nofile" "soft $soft, hard $hard" ">= $2 (< $min is FAIL)" "$st" "$4" "$fix" "$note"
}

check_memlock() { # NAME REC ACCEPT SEV
    local soft hard min=${3#min:} st fix want note
    soft=$(ulimit -Sl) hard=$(ulimit -Hl)
    # glommio registers its 10 MiB io_memory with each of its 3 rings per
    # shard; the kernel counts that against RLIMIT_MEMLOCK (not for root /
    # CAP_IPC_LOCK). Short of it glommio logs "Skipping" and runs unregistered.
    want=$((shards * 30 * 1024))
    fix="ulimit -l unlimited (as root, in the shell that starts shardmq); systemd: LimitMEMLOCK=infinity; persistent: $apply_hint"
    note="the hard limit counts: shardmq raises the soft limit to it at start"
    if [[ $hard == unlimited ]] || (($(num_cmp "$hard" "$want") >= 0)); then
        st=OK fix=''
    elif (($(num_cmp "$hard" "$min") < 0)); then
        st=$4 note="below $min KiB glommio refuses to start (io_uring rings); $note"
    else
        st=WARN note="below ~$want KiB ($shards shards x 30 MiB) io_uring buffer registration fails and glommio falls back to slower unregistered I/O, unless the broker runs as root (CAP_IPC_LOCK); $note"
    fi
    report "ulimit.memlock" "soft $soft KiB, hard $hard KiB" "$2 (>= $min KiB required)" "$st" "$4" "$fix" "$note"
}

check_scheduler() { # NAME REC ACCEPT SEV
    local d cur=() fixes=() w avail notes='' have=0
    if [[ -z $DEV_DISKS ]]; then
        report "disk.scheduler" "n/a" "$2" "n/a" "$4" "" "$DEV_WHY"
        return
    fi
    for d in $DEV_DISKS; do
        if ! avail=$(read_file "/sys/block/$d/queue/scheduler"); then
            cur+=("$d=n/a")
            continue
        fi
        cur+=("$d=$(scheduler_of "$d")")
        have=$((have + 1))
        [[ $d == nvme* && $(scheduler_of "$d") == none ]] && notes="none on NVMe is fine: the device's own queues schedule"
        w=$(scheduler_wanted "$d")
        [[ -z $w ]] && continue
        if [[ $avail != *"$w"* ]]; then fixes+=("${SUDO}modprobe $w"); fi
        fixes+=("echo $w | ${SUDO}tee /sys/block/$d/queue/scheduler")
    done
    if ((have == 0)); then
        report "disk.scheduler" "${cur[*]}" "$2" "n/a" "$4" "" "no scheduler file for ${DEV_DISKS} (device-mapper / virtual device)"
    elif ((${#fixes[@]} == 0)); then
        report "disk.scheduler" "${cur[*]}" "$2 (none on NVMe)" OK "$4" "" "data dir on ${DEV_SOURCE:-$DEV_NODE}${notes:+; $notes}"
    else
        local IFS=$'\n' joined
        joined=$(printf '%s && ' "${fixes[@]}")
        report "disk.scheduler" "${cur[*]}" "$2 (none on NVMe)" "$4" "$4" "${joined% && }" "data dir on ${DEV_SOURCE:-$DEV_NODE}"
    fi
}

check_filesystem() { # NAME REC ACCEPT SEV
    if [[ -z $DEV_FSTYPE ]]; then
        report "disk.filesystem" "n/a" "$(accept_text "$3" "$2")" "n/a" "$4" "" "cannot tell the filesystem of $data_dir"
    elif accept_ok "$3" "$2" "$DEV_FSTYPE"; then
        report "disk.filesystem" "$DEV_FSTYPE" "$(accept_text "$3" "$2")" OK "$4" "" "mounted on $DEV_MOUNT"
    else
        report "disk.filesystem" "$DEV_FSTYPE" "$(accept_text "$3" "$2")" "$4" "$4" \
            "put the data dir on an XFS or ext4 filesystem (e.g. ${SUDO}mkfs.xfs on a dedicated device)" \
            "O_DIRECT, fallocate and fdatasync are best tested on XFS/ext4"
    fi
}

check_thp() { # NAME REC ACCEPT SEV
    local f=/sys/kernel/mm/transparent_hugepage/$1 cur
    if ! cur=$(read_file "$f"); then
        report "thp.$1" "n/a" "$(accept_text "$3" "$2")" "n/a" "$4" "" "$f does not exist (no THP in this kernel)"
        return
    fi
    cur=$(bracketed "$cur")
    if accept_ok "$3" "$2" "$cur"; then
        report "thp.$1" "$cur" "$(accept_text "$3" "$2")" OK "$4" "" ""
    else
        report "thp.$1" "$cur" "$(accept_text "$3" "$2")" "$4" "$4" "echo $2 | ${SUDO}tee $f" \
            "runtime only; persist with kernel parameter transparent_hugepage=$2 (enabled)"
    fi
}

check_governor() { # NAME REC ACCEPT SEV
    local g v counts='' bad=0
    local -A seen=()
    for g in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor; do
        v=$(read_file "$g") || continue
        seen[$v]=$((${seen[$v]:-0} + 1))
        [[ $v == "$2" ]] || bad=1
    done
    if ((${#seen[@]} == 0)); then
        report "cpu.governor" "n/a" "$2" "n/a" "$4" "" "no cpufreq (VM or container: the host decides the frequency)"
        return
    fi
    for v in "${!seen[@]}"; do counts+="$v x${seen[$v]} "; done
    if ((bad == 0)); then
        report "cpu.governor" "${counts% }" "$2" OK "$4" "" ""
    else
        report "cpu.governor" "${counts% }" "$2" "$4" "$4" \
            "echo $2 | ${SUDO}tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor" \
            "runtime only; persist with cpupower / tuned (profile throughput-performance)"
    fi
}

check_numa() { # NAME REC ACCEPT SEV
    local nodes=() n pid c policy=''
    if [[ ! -d /sys/devices/system/node ]]; then
        report "numa.nodes" "n/a" "1, or numactl --interleave=all" "n/a" "$4" "" "no /sys/devices/system/node (kernel without NUMA)"
        return
    fi
    for n in /sys/devices/system/node/node[0-9]*; do [[ -d $n ]] && nodes+=("${n##*/node}"); done
    if ((${#nodes[@]} <= 1)); then
        report "numa.nodes" "${#nodes[@]} node" "1, or numactl --interleave=all" OK "$4" "" "single node: nothing to interleave"
        return
    fi
    # A running broker started under numactl shows its policy in numa_maps.
    for c in /proc/[0-9]*/comm; do
        if [[ $(read_file "$c") == shardmq ]]; then
            pid=${c#/proc/} pid=${pid%/comm}
            grep -q interleave "/proc/$pid/numa_maps" 2>/dev/null && policy=interleave
            break
        fi
    done
    if [[ $policy == interleave ]]; then
        report "numa.nodes" "${#nodes[@]} nodes, broker interleaved" "numactl --interleave=all" OK "$4" "" ""
    else
        report "numa.nodes" "${#nodes[@]} nodes" "numactl --interleave=all" "$4" "$4" \
            "start the broker as: numactl --interleave=all shardmq serve ... (systemd: ExecStart=/usr/bin/numactl --interleave=all ...)" \
            "cannot see a running interleaved broker; needs the numactl package"
    fi
}

check_irq_affinity() { # NAME REC ACCEPT SEV
    local irq name cpus c total=0 on_shard=() targets='' files=() rr=()
    local -A used=()
    while read -r irq name; do
        [[ -n $irq ]] || continue
        cpus=$(irq_cpus "$irq") || continue
        total=$((total + 1))
        for c in $cpus; do used[$c]=1; done
        if [[ -n $house_cpus ]]; then
            for c in $cpus; do
                if ((c < shards)); then
                    on_shard+=("$irq($name)")
                    files+=("/proc/irq/$irq/smp_affinity_list")
                    break
                fi
            done
        fi
        rr+=("echo $((total % ncpu)) | ${SUDO}tee /proc/irq/$irq/smp_affinity_list")
    done < <(device_irqs)
    if ((total == 0)); then
        report "irq.affinity" "n/a" "off shard CPUs $shard_cpus" "n/a" "$4" "" "no NIC/storage IRQs visible in /proc/interrupts"
        return
    fi
    targets=$(printf '%s\n' "${!used[@]}" | sort -n | tr '\n' ',')
    targets=${targets%,}
    if [[ -n $house_cpus ]]; then
        if ((${#on_shard[@]} == 0)); then
            report "irq.affinity" "$total device IRQs on CPUs $targets" "CPUs $house_cpus (shards on $shard_cpus)" OK "$4" "" ""
        else
            report "irq.affinity" "${#on_shard[@]}/$total device IRQs on shard CPUs: ${on_shard[*]}" \
                "CPUs $house_cpus (shards on $shard_cpus)" "$4" "$4" \
                "echo $house_cpus | ${SUDO}tee ${files[*]}" \
                "kernel-managed IRQs (multi-queue NVMe/virtio) refuse the write; apply.sh --shards $shards does this"
        fi
    elif ((ncpu == 1 || ${#used[@]} > 1 || total == 1)); then
        report "irq.affinity" "$total device IRQs over CPUs $targets" "spread (all $ncpu CPUs run shards)" OK "$4" "" \
            "every core runs a shard; leave CPUs free with --shards / shardCount < $ncpu to keep IRQs off them"
    else
        local IFS=';'
        report "irq.affinity" "$total device IRQs all on CPU $targets" "spread (all $ncpu CPUs run shards)" "$4" "$4" \
            "${rr[*]}" "one shard core takes every interrupt; or run irqbalance"
    fi
}

check_irqbalance() { # NAME REC ACCEPT SEV
    local pid banned b ok=1
    if ! pid=$(irqbalance_pid); then
        report "irq.irqbalance" "not running" "stopped, or banned from shard CPUs" OK "$4" "" \
            "IRQ placement is static (kernel defaults or apply.sh)"
        return
    fi
    if [[ -z $house_cpus ]]; then
        report "irq.irqbalance" "running (pid $pid)" "any (all CPUs run shards)" OK "$4" "" "spreads IRQs over every core"
        return
    fi
    banned=$(irqbalance_banned) || banned=''
    if [[ $banned =~ ^[0-9,-]+$ ]]; then
        local -A ban=()
        for b in $(expand_cpus "$banned"); do ban[$b]=1; done
        for ((b = 0; b < shards; b++)); do [[ -n ${ban[$b]:-} ]] || ok=0; done
    else
        ok=0
    fi
    if ((ok)); then
        report "irq.irqbalance" "running, banned $banned" "banned from $shard_cpus" OK "$4" "" ""
    else
        report "irq.irqbalance" "running (pid $pid), banned: ${banned:-none}" "banned from $shard_cpus" "$4" "$4" \
            "set IRQBALANCE_BANNED_CPULIST=$shard_cpus in /etc/default/irqbalance and restart irqbalance (or stop it)" \
            "irqbalance moves IRQs back onto shard cores"
    fi
}

for i in "${!CONF_KIND[@]}"; do
    k=${CONF_KIND[$i]} n=${CONF_NAME[$i]} r=${CONF_REC[$i]} acc=${CONF_ACCEPT[$i]} sv=${CONF_SEV[$i]}
    case $k:$n in
        kernel:version) check_kernel "$n" "$r" "$acc" "$sv" ;;
        sysctl:*) check_sysctl "$n" "$r" "$acc" "$sv" ;;
        ulimit:nofile) check_nofile "$n" "$r" "$acc" "$sv" ;;
        ulimit:memlock) check_memlock "$n" "$r" "$acc" "$sv" ;;
        disk:scheduler) check_scheduler "$n" "$r" "$acc" "$sv" ;;
        disk:filesystem) check_filesystem "$n" "$r" "$acc" "$sv" ;;
        thp:*) check_thp "$n" "$r" "$acc" "$sv" ;;
        cpu:governor) check_governor "$n" "$r" "$acc" "$sv" ;;
        numa:nodes) check_numa "$n" "$r" "$acc" "$sv" ;;
        irq:affinity) check_irq_affinity "$n" "$r" "$acc" "$sv" ;;
        irq:irqbalance) check_irqbalance "$n" "$r" "$acc" "$sv" ;;
        *) echo "$conf: unknown setting $k $n" >&2; exit 2 ;;
    esac
done

n_ok=0 n_warn=0 n_fail=0 n_na=0 failed=()
for i in "${!R_NAME[@]}"; do
    case ${R_STATUS[$i]} in
        OK) n_ok=$((n_ok + 1)) ;;
        WARN) n_warn=$((n_warn + 1)) ;;
        FAIL) n_fail=$((n_fail + 1)) failed+=("${R_NAME[$i]}") ;;
        *) n_na=$((n_na + 1)) ;;
    esac
done
rc=0
((n_fail > 0)) && rc=1

json_str() {
    local str=$1 esc='' c i
    str=${str//\\/\\\\} str=${str//\"/\\\"} str=${str//$'\n'/\\n} str=${str//$'\t'/\\t} str=${str//$'\r'/\\r}
    # Any other control character as \u00XX.
    for ((i = 0; i < ${#str}; i++)); do
        c=${str:i:1}
        if [[ $c == [[:cntrl:]] ]]; then printf -v c '\\u%04x' "'$c"; fi
        esc+=$c
    done
    printf '"%s"' "$esc"
}

if ((json)); then
    printf '{\n  "data_dir": %s,\n  "mount": %s,\n  "fstype": %s,\n  "device": %s,\n  "disks": [' \
        "$(json_str "$data_dir")" "$(json_str "$DEV_MOUNT")" "$(json_str "$DEV_FSTYPE")" "$(json_str "$DEV_NODE")"
    sep=''
    for d in $DEV_DISKS; do printf '%s%s' "$sep" "$(json_str "$d")"; sep=', '; done
    printf '],\n  "cpus": %d,\n  "shards": %d,\n  "checks": [\n' "$ncpu" "$shards"
    for i in "${!R_NAME[@]}"; do
        fix=null
        [[ -n ${R_FIX[$i]} ]] && fix=$(json_str "${R_FIX[$i]}")
        printf '    {"name": %s, "current": %s, "recommended": %s, "status": %s, "severity": %s, "fix": %s, "note": %s}%s\n' \
            "$(json_str "${R_NAME[$i]}")" "$(json_str "${R_CUR[$i]}")" "$(json_str "${R_REC[$i]}")" \
            "$(json_str "${R_STATUS[$i]}")" "$(json_str "${R_SEV[$i]}")" "$fix" "$(json_str "${R_NOTE[$i]}")" \
            "$([[ $i -lt $((${#R_NAME[@]} - 1)) ]] && echo ,)"
    done
    printf '  ],\n  "summary": {"ok": %d, "warn": %d, "fail": %d, "na": %d},\n  "exit_code": %d\n}\n' \
        "$n_ok" "$n_warn" "$n_fail" "$n_na" "$rc"
    exit "$rc"
fi

dev_desc=${DEV_WHY:-"${DEV_SOURCE:-$DEV_NODE} -> ${DEV_DISKS}, $DEV_FSTYPE on $DEV_MOUNT"}
echo "shardmq tuning check: data dir $data_dir ($dev_desc); $ncpu CPUs, $shards shards on CPUs $shard_cpus"
printf '%-29s %-36s %-34s %s\n' SETTING CURRENT RECOMMENDED STATUS
for i in "${!R_NAME[@]}"; do
    printf '%-29s %-36s %-34s %s\n' "${R_NAME[$i]}" "${R_CUR[$i]}" "${R_REC[$i]}" "${R_STATUS[$i]}"
    case ${R_STATUS[$i]} in
        OK) ;;
        n/a) [[ -n ${R_NOTE[$i]} ]] && echo "    note: ${R_NOTE[$i]}" ;;
        *)
            echo "    fix:  ${R_FIX[$i]}"
            [[ -n ${R_NOTE[$i]} ]] && echo "    note: ${R_NOTE[$i]}"
            ;;
    esac
done
summary="summary: $n_ok OK, $n_warn WARN, $n_fail FAIL, $n_na n/a"
((n_fail > 0)) && summary+=" -- FAIL: ${failed[*]} (shardmq will not run well until fixed)"
echo "$summary"
if ((n_warn + n_fail > 0)); then
    echo "fixes above are runtime only; to apply all and persist them: ${SUDO}$shown/apply.sh --persist $data_dir (--dry-run shows the commands)"
fi
exit "$rc"
