package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/order-system/order-system/tools/loadgen/procstat"
	"github.com/order-system/order-system/tools/loadgen/result"
)

// summarize computes nearest-rank percentiles in milliseconds.
func summarize(sample []time.Duration) result.Percentiles {
	if len(sample) == 0 {
		return result.Percentiles{}
	}
	s := sorted(sample)
	at := func(q float64) float64 { return ms(nearestRank(s, q)) }
	return result.Percentiles{Count: len(s), P50: at(0.50), P95: at(0.95), P99: at(0.99), P999: at(0.999), Max: ms(s[len(s)-1])}
}

// nearestRank is the q-quantile of a sorted, non-empty sample: its smallest element with at
// least a share q of the sample at or below it.
func nearestRank(s []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(i, 0)]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*100) / 100 }

// procSamples adds up the CPU time of the processes and takes the largest peak RSS.
func procSamples(pids []int) result.ProcStats {
	var p result.ProcStats
	for _, pid := range pids {
		cpu, peak, ok := procSample(pid)
		if !ok {
			continue
		}
		p.CPUSeconds += cpu
		p.PeakRSSMiB = max(p.PeakRSSMiB, peak)
		p.Instances++
	}
	return p
}

// procSample reads a process's CPU time (user + system, in clock ticks of 1/100 s on Linux)
// and its peak resident set size from /proc.
func procSample(pid int) (cpu float64, peakMiB float64, ok bool) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(fields) < 13 {
		return 0, 0, false
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	status, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, found := strings.CutPrefix(line, "VmHWM:"); found {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			peakMiB = kb / 1024
		}
	}
	return (utime + stime) / 100, peakMiB, true
}

// readPIDs reads, for each name, <dir>/<name>.pid and the further instances' <name>.2.pid,
// <name>.3.pid and so on, as make run writes them with REPLICAS: "<pid> <start time>", the
// start time in clock ticks after boot as in /proc/<pid>/stat. A file whose process is gone,
// or whose pid another process now has, names none.
func readPIDs(dir string, names []string) map[string][]int {
	pids := map[string][]int{}
	for _, n := range names {
		for i := 1; ; i++ {
			file := n + ".pid"
			if i > 1 {
				file = fmt.Sprintf("%s.%d.pid", n, i)
			}
			b, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				break
			}
			if pid, ok := livePID(string(b)); ok {
				pids[n] = append(pids[n], pid)
			}
		}
	}
	return pids
}

// livePID reads a pid file's "<pid> <start time>" (or a bare pid, as nginx writes before make
// run adds the start time) and says whether that process still runs.
func livePID(file string) (int, bool) {
	f := strings.Fields(file)
	if len(f) == 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, false
	}
	p, err := procstat.ReadProc("/proc", pid)
	if err != nil {
		return 0, false
	}
	if len(f) > 1 && f[1] != strconv.FormatUint(p.Start, 10) {
		return 0, false
	}
	return pid, true
}
