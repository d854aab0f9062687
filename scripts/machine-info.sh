#!/usr/bin/env bash
# The header of every benchmark's machine.txt: when, which commit (dirty or
# not), which kernel and CPU. Benchmark scripts append their own lines.
echo "date: $(date -Is)"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)')"
echo "kernel: $(uname -r)"
lscpu | grep -E '^(Model name|CPU\(s\)|Hypervisor vendor)'
