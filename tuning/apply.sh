#!/usr/bin/env bash
# Applies tuning/shardmq-tuning.conf to this host (as root). Idempotent: it
# only changes what tuning/check.sh would flag and never lowers a value that
# is already acceptable. --dry-run prints the exact commands instead (and
# needs no root); --persist also writes the sysctl.d, limits.d and udev
# files and prints the systemd drop-in for the broker's unit.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

usage() {
    cat <<EOF
usage: $0 [--dry-run] [--persist] [--shards N] [--user USER] [--conf FILE] [DATA_DIR]

  DATA_DIR      the broker's storePathRootDir (default ./data); the I/O
                scheduler is set on the disk(s) under it (partitions,
                device-mapper and md resolved to the physical disks)
  --dry-run     print the commands (a runnable script), change nothing
  --persist     also write /etc/sysctl.d/99-shardmq.conf,
                /etc/security/limits.d/99-shardmq.conf and
                /etc/udev/rules.d/60-shardmq-scheduler.rules, and print the
                systemd drop-in (LimitNOFILE=, LimitMEMLOCK=)
  --shards N    shards the broker runs (shardCount; default one per CPU).
                With N < CPUs, NIC/storage IRQs are moved to CPUs N..
  --user USER   user of the limits.d entries (default '*', plus root)
  --conf FILE   settings file (default $here/shardmq-tuning.conf)
EOF
}

dry=0 persist=0 shards=0 user='*' conf=$here/shardmq-tuning.conf data_dir=''
while (($#)); do
    case $1 in
        --dry-run | -n) dry=1 ;;
        --persist) persist=1 ;;
        --shards) shards=${2:?--shards needs a number}; shift ;;
        --shards=*) shards=${1#*=} ;;
        --user) user=${2:?--user needs a name}; shift ;;
        --user=*) user=${1#*=} ;;
        --conf) conf=${2:?--conf needs a file}; shift ;;
        --conf=*) conf=${1#*=} ;;
        --data-dir) data_dir=${2:?--data-dir needs a directory}; shift ;;
        --data-dir=*) data_dir=${1#*=} ;;
        -h | --help) usage; exit 0 ;;
        -*) usage >&2; exit 2 ;;
        *)
            if [[ -n $data_dir ]]; then usage >&2; exit 2; fi
            data_dir=$1
            ;;
    esac
    shift
done
data_dir=${data_dir:-./data}
if ! is_uint "$shards"; then
    echo "--shards: not a number: $shards" >&2
    exit 2
fi
if ((!dry && EUID != 0)); then
    echo "apply.sh changes kernel settings: run it as root (or with --dry-run to see the commands)" >&2
    exit 1
fi
load_conf "$conf" || exit 2

errors=0
# say TEXT: a comment line (dry-run output stays a runnable script).
say() { printf '# %s\n' "$*"; }

# quote ARGS: shell words as one would type them.
quote() {
    local a out=()
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./=:,@%+-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
    done
    printf '%s' "${out[*]}"
}

# run CMD...: print it (dry-run) or run it, counting failures.
run() {
    if ((dry)); then
        quote "$@"
        echo
        return 0
    fi
    echo "+ $(quote "$@")"
    if ! "$@"; then
        echo "  failed: $(quote "$@")" >&2
        errors=$((errors + 1))
    fi
}

# put VALUE FILE [soft]: echo VALUE > FILE (sysfs / procfs); a "soft"
# failure is reported but not counted.
put() {
    if ((dry)); then
        echo "echo $(quote "$1") > $2"
        return 0
    fi
    echo "+ echo $(quote "$1") > $2"
    if ! printf '%s\n' "$1" 2>/dev/null >"$2"; then
        if [[ ${3:-} == soft ]]; then return 1; fi
        echo "  failed: echo $1 > $2" >&2
        errors=$((errors + 1))
        return 1
    fi
}

# write_file PATH CONTENT: replace PATH when its content differs.
write_file() {
    if ((dry)); then
        printf "mkdir -p %s\ncat > %s <<'EOF'\n%sEOF\n" "$(dirname "$1")" "$1" "$2"
        return 0
    fi
    if [[ -f $1 && $(cat "$1") == "${2%$'\n'}" ]]; then
        say "unchanged: $1"
        return 0
    fi
    if ! { mkdir -p "$(dirname "$1")" && printf '%s' "$2" >"$1.tmp.$$" && mv "$1.tmp.$$" "$1"; }; then
        echo "  failed to write $1" >&2
        errors=$((errors + 1))
        return 1
    fi
    echo "+ wrote $1"
}

# set_sysctl KEY VALUE
set_sysctl() {
    if command -v sysctl >/dev/null 2>&1; then
        run sysctl -w "$1=$2"
    else
        put "$2" "$(sysctl_path "$1")"
    fi
}

((dry)) && echo "#!/bin/sh" && say "shardmq tuning, dry run: the commands apply.sh would run (as root)"
resolve_data_device "$data_dir"
ncpu=$(online_cpus)
((shards == 0 || shards > ncpu)) && shards=$ncpu

# --- sysctl ------------------------------------------------------------------
persisted=/etc/sysctl.d/99-shardmq.conf
sysctl_lines=''
for i in "${!CONF_KIND[@]}"; do
    [[ ${CONF_KIND[$i]} == sysctl ]] || continue
    key=${CONF_NAME[$i]} rec=${CONF_REC[$i]//,/ } accept=${CONF_ACCEPT[$i]}
    if ! cur=$(sysctl_get "$key"); then
        say "skip $key: not in this kernel"
        continue
    fi
    if [[ $accept == special ]]; then # kernel.io_uring_disabled: must be 0
        ok=0
        [[ $cur == "$rec" ]] && ok=1
    else
        ok=0
        accept_ok "$accept" "${CONF_REC[$i]}" "$cur" && ok=1
    fi
    target=$cur
    if ((ok)); then
        say "ok   $key = $cur"
    else
        target=$rec
        set_sysctl "$key" "$rec"
    fi
    # Persist what we change, and keep what an earlier --persist wrote, so a
    # second run writes the same file.
    if ((!ok)) || grep -qE "^[[:space:]]*${key//./\\.}[[:space:]]*=" "$persisted" 2>/dev/null; then
        sysctl_lines+="$key = $target"$'\n'
    fi
done

# --- I/O scheduler of the data disk(s) ---------------------------------------
udev_lines=''
if [[ -z $DEV_DISKS ]]; then
    say "skip I/O scheduler: $DEV_WHY"
else
    for d in $DEV_DISKS; do
        if ! read_file "/sys/block/$d/queue/scheduler" >/dev/null; then
            say "skip $d: no queue/scheduler"
            continue
        fi
        w=$(scheduler_wanted "$d")
        cur=$(scheduler_of "$d")
        if [[ -z $w ]]; then
            say "ok   $d scheduler = $cur"
            [[ $cur == none ]] && continue # NVMe on none: nothing to pin
            w=$cur
        else
            avail=$(read_file "/sys/block/$d/queue/scheduler")
            [[ $avail == *"$w"* ]] || run modprobe "$w"
            put "$w" "/sys/block/$d/queue/scheduler"
        fi
        udev_lines+="ACTION==\"add|change\", SUBSYSTEM==\"block\", KERNEL==\"$d\", ATTR{queue/scheduler}=\"$w\""$'\n'
    done
fi

# --- transparent huge pages --------------------------------------------------
for i in "${!CONF_KIND[@]}"; do
    [[ ${CONF_KIND[$i]} == thp ]] || continue
    f=/sys/kernel/mm/transparent_hugepage/${CONF_NAME[$i]}
    if ! cur=$(read_file "$f"); then
        say "skip THP ${CONF_NAME[$i]}: no $f"
        continue
    fi
    [[ $cur =~ \[([^]]+)\] ]] && cur=${BASH_REMATCH[1]}
    if accept_ok "${CONF_ACCEPT[$i]}" "${CONF_REC[$i]}" "$cur"; then
        say "ok   THP ${CONF_NAME[$i]} = $cur"
    else
        put "${CONF_REC[$i]}" "$f"
    fi
done

# --- CPU frequency governor ----------------------------------------------------
gov=$(conf_get governor rec) || gov=performance
n_gov=0
for g in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor; do
    cur=$(read_file "$g") || continue
    n_gov=$((n_gov + 1))
    [[ $cur == "$gov" ]] || put "$gov" "$g"
done
((n_gov == 0)) && say "skip CPU governor: no cpufreq (VM or container)"
((n_gov > 0)) && say "governor: $n_gov CPUs checked"

# --- IRQ affinity -----------------------------------------------------------------
if ((shards < ncpu)); then
    if ((shards == ncpu - 1)); then house=$shards; else house="$shards-$((ncpu - 1))"; fi
    say "shards on CPUs 0-$((shards - 1)); NIC/storage IRQs go to CPUs $house"
    while read -r irq name; do
        [[ -n $irq ]] || continue
        cpus=$(irq_cpus "$irq") || continue
        for c in $cpus; do
            if ((c < shards)); then
                # Kernel-managed IRQs (multi-queue NVMe/virtio) refuse this (EIO).
                put "$house" "/proc/irq/$irq/smp_affinity_list" soft || say "irq $irq ($name) is kernel-managed: left alone"
                break
            fi
        done
    done < <(device_irqs)
    if irqbalance_pid >/dev/null; then
        say "irqbalance is running: set IRQBALANCE_BANNED_CPULIST=0-$((shards - 1)) in /etc/default/irqbalance"
        say "and restart it, or it moves the IRQs back onto shard cores"
    fi
else
    say "every CPU runs a shard (--shards $shards of $ncpu): IRQ affinity left to the kernel / irqbalance"
fi

# --- NUMA ---------------------------------------------------------------------------
nodes=$(compgen -G '/sys/devices/system/node/node[0-9]*' | wc -l)
if ((nodes > 1)); then
    say "$nodes NUMA nodes: start the broker with: numactl --interleave=all shardmq serve ..."
fi

# --- limits (per process: only effective for new sessions / services) ---------------
nofile=$(conf_get nofile rec) || nofile=1048576
memlock=$(conf_get memlock rec) || memlock=unlimited
nr_open=$(sysctl_get fs.nr_open) || nr_open=''
if is_uint "$nofile" && is_uint "$nr_open" && (($(num_cmp "$nofile" "$nr_open") > 0)); then
    say "nofile $nofile is above fs.nr_open $nr_open: using $nr_open"
    nofile=$nr_open
fi
say "nofile / memlock are per-process limits: start the broker with"
say "  ulimit -n $nofile -l $memlock   (as root), or the systemd drop-in below"

if ((persist)); then
    if [[ -n $sysctl_lines ]]; then
        write_file "$persisted" "# shardmq host tuning, written by tuning/apply.sh --persist (see tuning/README.md)"$'\n'"$sysctl_lines"
    else
        say "no sysctl needed changing: $persisted not written"
    fi
    limits="# shardmq: file handles and locked memory (io_uring), written by tuning/apply.sh --persist"$'\n'
    limits+="# Applies to PAM sessions (login, ssh, su); systemd services need LimitNOFILE=/LimitMEMLOCK=."$'\n'
    for u in "$user" $([[ $user == '*' ]] && echo root); do
        limits+="$u soft nofile $nofile"$'\n'"$u hard nofile $nofile"$'\n'
        limits+="$u soft memlock $memlock"$'\n'"$u hard memlock $memlock"$'\n'
    done
    write_file /etc/security/limits.d/99-shardmq.conf "$limits"
    if [[ -n $udev_lines ]]; then
        write_file /etc/udev/rules.d/60-shardmq-scheduler.rules \
            "# shardmq: I/O scheduler of the data disk(s), written by tuning/apply.sh --persist"$'\n'"$udev_lines"
        if command -v udevadm >/dev/null 2>&1; then run udevadm control --reload-rules; fi
    fi
    [[ $memlock == unlimited ]] && sd_memlock=infinity || sd_memlock=${memlock}K
    say "THP and the CPU governor are not persisted here: add transparent_hugepage=madvise to"
    say "GRUB_CMDLINE_LINUX (then update-grub); use cpupower or tuned for the governor."
    say "systemd drop-in for the broker's unit; write it, then: systemctl daemon-reload && systemctl restart shardmq"
    dropin="[Service]"$'\n'"LimitNOFILE=$nofile"$'\n'"LimitMEMLOCK=$sd_memlock"$'\n'
    if ((nodes > 1)); then
        dropin+="ExecStart="$'\n'"ExecStart=/usr/bin/numactl --interleave=all /usr/local/bin/shardmq serve -c /etc/shardmq/broker.conf"$'\n'
    fi
    say "---- /etc/systemd/system/shardmq.service.d/10-tuning.conf ----"
    # In a dry run the snippet stays commented so the output remains a script.
    while IFS= read -r l; do
        if ((dry)); then echo "# $l"; else echo "$l"; fi
    done <<<"${dropin%$'\n'}"
    say "----"
fi

if ((errors > 0)); then
    echo "$errors command(s) failed" >&2
    exit 1
fi
shard_arg=''
((shards < ncpu)) && shard_arg=" --shards $shards"
((dry)) || say "done; verify with: $(dirname "$0")/check.sh --data-dir $(quote "$data_dir")$shard_arg"
exit 0
