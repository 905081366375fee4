package system_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// chaosHistory is what the chaos clients were told, kept twice: every request and fault as a
// JSON line in a file (for a post-mortem), and the facts the oracle needs in memory.
type chaosHistory struct {
	mu    sync.Mutex
	start time.Time
	file  *os.File
	w     *bufio.Writer
	enc   *json.Encoder

	operations int
	requests   int
	statuses   map[int]int
	faults     map[string]int
	anomalies  []anomaly
	// failovers are the times from killing the database primary to the monitor reporting
	// the standby promoted; unavailable counts the 503s answered from a kill of the primary
	// until the pair was whole again.
	failovers   []time.Duration
	unavailable int

	users    []chaosUser
	deposits map[string]*depositTally     // user id → deposits as answered
	orders   map[string]map[string]string // order id → status → what reported it first
	keys     []*orderKey                  // every keyed order request
	resolved []*orderKey                  // the keys that have a definitive answer (for replays)
	pending  []*keyedDeposit              // keyed deposits without a definitive answer
}

// historyLine is one line of the history file: a request, a fault or an anomaly.
type historyLine struct {
	T       int64  `json:"t"` // milliseconds since the start
	Client  int    `json:"client,omitempty"`
	Op      string `json:"op,omitempty"`
	Method  string `json:"method,omitempty"`
	Path    string `json:"path,omitempty"`
	Key     string `json:"key,omitempty"`
	Body    string `json:"body,omitempty"`
	Status  int    `json:"status,omitempty"`
	Resp    string `json:"resp,omitempty"`
	Ms      int64  `json:"ms,omitempty"`
	Err     string `json:"err,omitempty"`
	Fault   string `json:"fault,omitempty"`
	Anomaly string `json:"anomaly,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

type anomaly struct{ kind, detail string }

type chaosUser struct{ id, email string }

// depositTally bounds what the ledger may hold for a user: every deposit answered 200 must be
// there, and at most the ones whose answer was lost may be there too.
type depositTally struct{ acked, uncertain int64 }

// orderKey is one keyed order request and the answers it got under its key.
type orderKey struct {
	key, body string
	sent      time.Time       // when its first request was sent: the key expires no earlier than a TTL after
	final     *response       // the first definitive answer; every later one must equal it
	orders    map[string]bool // every order its answers named: at most one of them may be paid
}

// keyedDeposit is a keyed deposit whose answer was lost; it is retried after the faults.
type keyedDeposit struct {
	key, body, user string
	amount          int64
}

func newChaosHistory(t *testing.T, path string) *chaosHistory {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("create the history file: %v", err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	h := &chaosHistory{start: time.Now(), file: f, w: w, enc: json.NewEncoder(w),
		statuses: map[int]int{}, faults: map[string]int{}, deposits: map[string]*depositTally{},
		orders: map[string]map[string]string{}}
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := w.Flush(); err != nil {
			t.Errorf("write the history: %v", err)
		}
		f.Close()
	})
	return h
}

// line writes one history line; the caller holds mu.
func (h *chaosHistory) line(l historyLine) {
	l.T = time.Since(h.start).Milliseconds()
	h.enc.Encode(l) // a failed write surfaces at the final Flush
}

func (h *chaosHistory) operation() {
	h.mu.Lock()
	h.operations++
	h.mu.Unlock()
}

// request records one HTTP exchange. A 500 is an anomaly: every request the clients send is
// valid input.
func (h *chaosHistory) request(client int, op, method, path, key, body string, r response, took time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests++
	h.statuses[r.Status]++
	l := historyLine{Client: client, Op: op, Method: method, Path: path, Key: key, Body: body, Status: r.Status,
		Resp: strings.TrimSpace(string(r.Body)), Ms: took.Milliseconds()}
	if r.Err != nil {
		l.Err = r.Err.Error()
	}
	h.line(l)
	if r.Status == 500 {
		h.anomalyLocked("status-500", fmt.Sprintf("%s %s key=%q body=%s -> %s", method, path, key, body, r.Body))
	}
}

// fault records a fault the nemesis injected at start and has healed now.
func (h *chaosHistory) fault(kind string, start time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults[kind]++
	h.enc.Encode(historyLine{T: start.Sub(h.start).Milliseconds(), Fault: kind, Ms: time.Since(start).Milliseconds()})
}

// progress is one line on how far the run has come, for a long run to show it is alive.
func (h *chaosHistory) progress(elapsed, duration time.Duration) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	faults := 0
	for _, n := range h.faults {
		faults += n
	}
	return fmt.Sprintf("chaos: %v of %v: %d operations, %d requests (%d answered 503), %d faults, %d anomalies so far",
		elapsed.Round(time.Second), duration, h.operations, h.requests, h.statuses[503], faults, len(h.anomalies))
}

// status returns how many requests were answered with code so far.
func (h *chaosHistory) status(code int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.statuses[code]
}

func (h *chaosHistory) failover(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failovers = append(h.failovers, d)
}

func (h *chaosHistory) duringFailovers(unavailable int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unavailable += unavailable
}

func (h *chaosHistory) anomaly(kind, detail string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.anomalyLocked(kind, detail)
}

func (h *chaosHistory) anomalyLocked(kind, detail string) {
	h.anomalies = append(h.anomalies, anomaly{kind, detail})
	h.line(historyLine{Anomaly: kind, Detail: detail})
}

func (h *chaosHistory) addUser(id, email string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.users = append(h.users, chaosUser{id, email})
}

func (h *chaosHistory) randomUser(rng *rand.Rand) chaosUser {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.users[rng.IntN(len(h.users))]
}

// deposit records a deposit's answer: applied (200), unknown (no answer, 5xx) or refused.
func (h *chaosHistory) deposit(user string, amount int64, status int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.deposits[user]
	if d == nil {
		d = &depositTally{}
		h.deposits[user] = d
	}
	switch {
	case status == 200:
		d.acked += amount
	case retryable(status):
		d.uncertain += amount
	}
}

func (h *chaosHistory) unresolvedDeposit(d *keyedDeposit) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pending = append(h.pending, d)
}

func (h *chaosHistory) unresolvedDeposits() []*keyedDeposit {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.pending)
}

// observe records the order an answer names, with the status it was told. A finished order
// never changes status, so two finished statuses for one order are an anomaly.
func (h *chaosHistory) observe(id, status, source string) {
	if id == "" || status == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := h.orders[id]
	if seen == nil {
		seen = map[string]string{}
		h.orders[id] = seen
	}
	if _, ok := seen[status]; ok {
		return
	}
	seen[status] = source
	if seen["completed"] != "" && seen["failed"] != "" {
		h.anomalyLocked("status-flip", fmt.Sprintf("order %s was seen completed (%s) and failed (%s)", id, seen["completed"], seen["failed"]))
	}
}

func (h *chaosHistory) randomOrder(rng *rand.Rand) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.keys) == 0 {
		return ""
	}
	// Keyed orders are a fair sample, and a slice picks in O(1) where the map would not.
	k := h.keys[rng.IntN(len(h.keys))]
	if k.final == nil {
		return ""
	}
	var o orderJSON
	json.Unmarshal(k.final.Body, &o)
	return orderOf(o).id
}

func (h *chaosHistory) newKey(k *orderKey) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.keys = append(h.keys, k)
}

// randomResolved picks a key with a definitive answer, first sent after since.
func (h *chaosHistory) randomResolved(rng *rand.Rand, since time.Time) *orderKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.resolved) == 0 {
		return nil
	}
	if k := h.resolved[rng.IntN(len(h.resolved))]; k.sent.After(since) {
		return k
	}
	return nil
}

// keyNamed records the order an answer under k names.
func (h *chaosHistory) keyNamed(k *orderKey, r response) {
	var o orderJSON
	if r.Status == 0 || json.Unmarshal(r.Body, &o) != nil {
		return
	}
	id := orderOf(o).id
	if id == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if k.orders == nil {
		k.orders = map[string]bool{}
	}
	k.orders[id] = true
}

// answer records an answer under a key. Only definitive answers are stored by the service,
// and a repeat gets the stored one byte for byte: every definitive answer for a key must be
// identical to the first.
func (h *chaosHistory) answer(k *orderKey, r response) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if k.final == nil {
		k.final = &r
		h.resolved = append(h.resolved, k)
		return
	}
	if r.Status != k.final.Status || !bytes.Equal(r.Body, k.final.Body) {
		h.anomalyLocked("key-disagreement", fmt.Sprintf("key %q: first definitive answer %d %s, later %d %s",
			k.key, k.final.Status, k.final.Body, r.Status, r.Body))
	}
}

func (h *chaosHistory) unresolvedKeys() []*orderKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*orderKey
	for _, k := range h.keys {
		if k.final == nil {
			out = append(out, k)
		}
	}
	return out
}

// summary is the one line a run prints: operations, faults by kind, anomalies by kind.
func (h *chaosHistory) summary(seed uint64, d time.Duration, path string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	byKind := map[string]int{}
	for _, a := range h.anomalies {
		byKind[a.kind]++
	}
	failovers := make([]string, len(h.failovers))
	for i, f := range h.failovers {
		failovers[i] = f.Round(100 * time.Millisecond).String()
	}
	return fmt.Sprintf("chaos seed=%d duration=%v operations=%d requests=%d users=%d orders=%d statuses=%s faults=%s "+
		"failovers=[%s] 503s-while-the-primary-was-lost=%d anomalies=%d %s history=%s",
		seed, d.Round(time.Second), h.operations, h.requests, len(h.users), len(h.orders), counts(h.statuses),
		counts(h.faults), strings.Join(failovers, " "), h.unavailable, len(h.anomalies), counts(byKind), path)
}

// counts prints a map as {k=v ...} in key order.
func counts[K int | string](m map[K]int) string {
	var b strings.Builder
	b.WriteString("{")
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%v=%d", k, m[k])
	}
	b.WriteString("}")
	return b.String()
}
