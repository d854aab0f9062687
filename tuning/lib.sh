# shellcheck shell=bash disable=SC2034  # DEV_* and CONF_* are read by check.sh / apply.sh
# Helpers shared by check.sh and apply.sh (sourced, not run). Only bash,
# coreutils and util-linux; every probe tolerates a missing /proc or /sys
# file (containers, no cpufreq, no NUMA) and answers empty instead.

# CONF_KIND/NAME/REC/ACCEPT/SEV: parallel arrays, one entry per conf line.
CONF_KIND=() CONF_NAME=() CONF_REC=() CONF_ACCEPT=() CONF_SEV=()

# load_conf FILE
load_conf() {
    local line kind name rec accept sev
    CONF_KIND=() CONF_NAME=() CONF_REC=() CONF_ACCEPT=() CONF_SEV=()
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line%%#*}
        read -r kind name rec accept sev _ <<<"$line" || true
        [[ -z ${kind:-} ]] && continue
        if [[ -z ${sev:-} ]]; then
            echo "bad line in $1: $line" >&2
            return 2
        fi
        CONF_KIND+=("$kind") CONF_NAME+=("$name") CONF_REC+=("$rec") CONF_ACCEPT+=("$accept") CONF_SEV+=("$sev")
    done <"$1"
}

# conf_get NAME FIELD (rec|accept|sev): prints the field of the entry NAME.
conf_get() {
    local i
    for i in "${!CONF_NAME[@]}"; do
        if [[ ${CONF_NAME[$i]} == "$1" ]]; then
            case $2 in
                rec) echo "${CONF_REC[$i]}" ;;
                accept) echo "${CONF_ACCEPT[$i]}" ;;
                sev) echo "${CONF_SEV[$i]}" ;;
            esac
            return 0
        fi
    done
    return 1
}

# read_file PATH: its first line, or nothing (and status 1) when unreadable.
read_file() {
    local v
    [[ -r $1 ]] || return 1
    IFS= read -r v <"$1" 2>/dev/null || [[ -n ${v:-} ]] || return 1
    printf '%s' "$v"
}

# sysctl_path KEY -> /proc/sys/a/b/c (dots become slashes).
sysctl_path() { printf '/proc/sys/%s' "${1//.//}"; }

# sysctl_get KEY: current value, tabs/spaces squeezed to single spaces.
sysctl_get() {
    local v
    local -a parts
    v=$(read_file "$(sysctl_path "$1")") || return 1
    read -r -a parts <<<"$v"
    printf '%s' "${parts[*]}"
}

# is_uint S
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# num_cmp A B: prints -1, 0 or 1 for arbitrary-length unsigned integers
# (fs.file-max can be 2^63-1, beyond what bash compares safely as text).
num_cmp() {
    local a=$1 b=$2
    a=${a#"${a%%[!0]*}"} b=${b#"${b%%[!0]*}"}
    a=${a:-0} b=${b:-0}
    if ((${#a} != ${#b})); then
        ((${#a} < ${#b})) && echo -1 || echo 1
    elif [[ $a == "$b" ]]; then
        echo 0
    elif [[ $a < "$b" ]]; then
        echo -1
    else
        echo 1
    fi
}

# version_ge A B: dotted numeric versions (6.18.44-fc-v669 >= 5.8).
version_ge() {
    local IFS=. i
    local -a a b
    read -r -a a <<<"${1%%[!0-9.]*}"
    read -r -a b <<<"$2"
    for i in 0 1 2; do
        local x=${a[$i]:-0} y=${b[$i]:-0}
        ((10#$x > 10#$y)) && return 0
        ((10#$x < 10#$y)) && return 1
    done
    return 0
}

# accept_ok RULE RECOMMENDED CURRENT: status 0 when CURRENT is acceptable.
accept_ok() {
    local rule=$1 rec=$2 cur=$3 c
    case $rule in
        le | ge | eq)
            is_uint "$cur" || return 1
            c=$(num_cmp "$cur" "$rec")
            case $rule in
                le) ((c <= 0)) ;;
                ge) ((c >= 0)) ;;
                eq) ((c == 0)) ;;
            esac
            ;;
        range:*)
            local lo=${rule#range:} hi
            hi=${lo#*-} lo=${lo%-*}
            is_uint "$cur" && (($(num_cmp "$cur" "$lo") >= 0 && $(num_cmp "$cur" "$hi") <= 0))
            ;;
        ge3)
            local -a cf rf
            read -r -a cf <<<"$cur"
            IFS=, read -r -a rf <<<"$rec"
            is_uint "${cf[2]:-}" && (($(num_cmp "${cf[2]}" "${rf[2]}") >= 0))
            ;;
        one-of:*)
            [[ ,${rule#one-of:}, == *",$cur,"* ]]
            ;;
        *) return 1 ;;
    esac
}

# accept_text RULE RECOMMENDED: human form of the rule (">= 4096").
accept_text() {
    case $1 in
        le) echo "<= $2" ;;
        ge) echo ">= $2" ;;
        eq) echo "$2" ;;
        range:*) local r=${1#range:}; echo "${r%-*}..${r#*-} ($2)" ;;
        ge3) echo "max >= ${2##*,} (${2//,/ })" ;;
        one-of:*) local r=${1#one-of:}; echo "${r//,/|}" ;;
        *) echo "$2" ;;
    esac
}

# expand_cpus "0-3,8,10-11" -> "0 1 2 3 8 10 11"
expand_cpus() {
    local part out=() i
    local -a parts
    IFS=, read -r -a parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
            for ((i = BASH_REMATCH[1]; i <= BASH_REMATCH[2]; i++)); do out+=("$i"); done
        elif [[ $part =~ ^[0-9]+$ ]]; then
            out+=("$part")
        fi
    done
    echo "${out[*]}"
}

# online_cpus: count of CPUs this process may run on — what shardmq's
# available_parallelism() sees, so the default shard count.
online_cpus() { nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1; }

# existing_ancestor DIR: DIR or its nearest existing parent (the data dir
# may not have been created yet; its future device is the parent's).
existing_ancestor() {
    local d=$1
    [[ $d == /* ]] || d=$PWD/$d
    while [[ ! -e $d && $d != / ]]; do d=$(dirname "$d"); done
    echo "$d"
}

# DEV_* describe the data directory's storage, filled by resolve_data_device:
#   DEV_MOUNT   mount point       DEV_SOURCE  mount source (/dev/mapper/x, /dev/vda1)
#   DEV_FSTYPE  filesystem type   DEV_NODE    the block device (vda1, dm-0)
#   DEV_DISKS   whole disks underneath (partitions and dm/md resolved): "vda"
#   DEV_WHY     why there is no device, when there is none
DEV_MOUNT='' DEV_SOURCE='' DEV_FSTYPE='' DEV_NODE='' DEV_DISKS='' DEV_WHY=''

# disks_under SYSFS_DIR: whole disks below a block device (recursing
# through partitions and the slaves of device-mapper / md / bcache).
disks_under() {
    local p=$1 s
    p=$(readlink -f "$p") || return 0
    if [[ -e $p/partition ]]; then
        disks_under "$(dirname "$p")"
        return
    fi
    if [[ -d $p/slaves ]] && compgen -G "$p/slaves/*" >/dev/null; then
        for s in "$p"/slaves/*; do disks_under "$s"; done
        return
    fi
    echo "${p##*/}"
}

resolve_data_device() {
    local dir majmin src
    dir=$(existing_ancestor "$1")
    DEV_MOUNT='' DEV_SOURCE='' DEV_FSTYPE='' DEV_NODE='' DEV_DISKS='' DEV_WHY=''
    if command -v findmnt >/dev/null 2>&1; then
        read -r DEV_MOUNT majmin DEV_FSTYPE DEV_SOURCE < <(findmnt -n -o TARGET,MAJ:MIN,FSTYPE,SOURCE -T "$dir" 2>/dev/null) || true
    fi
    if [[ -z $DEV_MOUNT ]]; then
        # No findmnt (or no answer): the device number of the directory itself.
        majmin=$(stat -c '%Hd:%Ld' "$dir" 2>/dev/null) || majmin=''
        DEV_FSTYPE=$(stat -f -c %T "$dir" 2>/dev/null) || DEV_FSTYPE=''
    fi
    # btrfs subvolumes, bind mounts: SOURCE may read "/dev/sda2[/@data]".
    src=${DEV_SOURCE%%\[*}
    if [[ ${majmin%%:*} == 0 || -z $majmin ]] && [[ -b $src ]]; then
        majmin=$(stat -L -c '%Hr:%Lr' "$src" 2>/dev/null) || majmin=''
    fi
    if [[ -z $majmin || ${majmin%%:*} == 0 ]]; then
        DEV_WHY="no block device under ${DEV_MOUNT:-$dir} (filesystem ${DEV_FSTYPE:-unknown})"
        return 1
    fi
    if [[ ! -e /sys/dev/block/$majmin ]]; then
        DEV_WHY="/sys/dev/block/$majmin is missing (container without /sys?)"
        return 1
    fi
    DEV_NODE=$(readlink -f "/sys/dev/block/$majmin")
    DEV_NODE=${DEV_NODE##*/}
    DEV_DISKS=$(disks_under "/sys/dev/block/$majmin" | sort -u | tr '\n' ' ')
    DEV_DISKS=${DEV_DISKS% }
    [[ -n $DEV_DISKS ]]
}

# scheduler_of DISK: the active I/O scheduler ("[mq-deadline]" -> mq-deadline).
scheduler_of() {
    local s
    s=$(read_file "/sys/block/$1/queue/scheduler") || return 1
    if [[ $s =~ \[([^]]+)\] ]]; then
        echo "${BASH_REMATCH[1]}"
    else
        echo "$s"
    fi
}

# scheduler_wanted DISK: the scheduler to set on DISK ("" = leave as is):
# mq-deadline, or deadline on pre-blk-mq kernels; NVMe may stay on none.
scheduler_wanted() {
    local avail cur
    avail=$(read_file "/sys/block/$1/queue/scheduler") || return 0
    cur=$(scheduler_of "$1")
    case $cur in
        mq-deadline | deadline) return 0 ;;
        none) [[ $1 == nvme* ]] && return 0 ;;
    esac
    if [[ $avail == *mq-deadline* ]]; then
        echo mq-deadline
    elif [[ $avail == *deadline* ]]; then
        echo deadline
    else
        echo mq-deadline # not built in: needs `modprobe mq-deadline` first
    fi
}

# device_irqs: "IRQ NAME" lines for network and storage interrupts (the
# ones worth keeping off shard cores), from /proc/interrupts.
DEVICE_IRQ_RE='virtio[0-9]+-(input|output|req|request)\.[0-9]+|nvme|mlx|ixgbe|i40e|ice-|bnxt|ena-|enp|ens|eno|eth|igb|e1000|vmxnet|hv_netvsc|ahci|megasas|mpt[0-9]?sas|qla|lpfc|hisi_sas|xen-blkfront|xen-netfront'
device_irqs() {
    local irq rest
    [[ -r /proc/interrupts ]] || return 0
    while read -r irq rest; do
        [[ $irq =~ ^([0-9]+):$ ]] || continue
        irq=${BASH_REMATCH[1]}
        [[ $rest =~ ($DEVICE_IRQ_RE) ]] || continue
        echo "$irq ${rest##* }"
    done </proc/interrupts
}

# irq_cpus IRQ: CPUs the interrupt is delivered to (effective affinity when
# the kernel exposes it, else the configured mask), e.g. "0 1".
irq_cpus() {
    local l
    l=$(read_file "/proc/irq/$1/effective_affinity_list") || l=$(read_file "/proc/irq/$1/smp_affinity_list") || return 1
    expand_cpus "$l"
}

# irqbalance_pid: pid of a running irqbalance, if any.
irqbalance_pid() {
    local c
    for c in /proc/[0-9]*/comm; do
        if [[ $(read_file "$c") == irqbalance ]]; then
            c=${c#/proc/}
            echo "${c%/comm}"
            return 0
        fi
    done
    return 1
}

# irqbalance_banned: the IRQBALANCE_BANNED_CPULIST (or _CPUS mask) configured.
irqbalance_banned() {
    local f l
    for f in /etc/default/irqbalance /etc/sysconfig/irqbalance; do
        [[ -r $f ]] || continue
        l=$(grep -E '^[[:space:]]*IRQBALANCE_BANNED_CPU(LIST|S)=' "$f" 2>/dev/null | tail -n 1) || continue
        l=${l#*=} l=${l//\"/}
        [[ -n $l ]] && echo "$l" && return 0
    done
    return 1
}
