package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"
)

// freeAddrs reserves n loopback ports by listening on port 0, then frees
// them for the nodes to take. The nodes must know every lookup address
// before any of them starts, so port 0 cannot be handed to them directly.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

type clusterNode struct {
	tcp, http, lookupTCP, lookupHTTP string
	proc                             *wrenProcess
}

// startCombined runs `wren` (broker and lookup in one process) on the
// node's addresses, announcing to every lookup in peers.
func startCombined(t *testing.T, n *clusterNode, peers []string) {
	t.Helper()
	args := []string{
		"--tcp-address=" + n.tcp, "--http-address=" + n.http, "--https-address=",
		"--lookup-tcp-address=" + n.lookupTCP, "--lookup-http-address=" + n.lookupHTTP,
		"--broadcast-address=127.0.0.1", "--data-path=" + t.TempDir(),
	}
	for _, p := range peers {
		args = append(args, "--lookupd-tcp-address="+p)
	}
	n.proc = startProcess(t, exec.Command(wrenBinary, args...))
}

func getJSON(url string, v any) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

// lookupProducers is how many producers a lookup lists for topic.
func lookupProducers(t *testing.T, lookupHTTP, topic string) int {
	var body struct {
		Producers []struct {
			TCPPort int `json:"tcp_port"`
		} `json:"producers"`
	}
	if code, err := getJSON("http://"+lookupHTTP+"/lookup?topic="+topic, &body); err != nil || code != http.StatusOK {
		return -1
	}
	return len(body.Producers)
}

type exactlyOnce struct {
	mu   sync.Mutex
	seen map[string]int
}

func (e *exactlyOnce) HandleMessage(m *nsq.Message) error {
	e.mu.Lock()
	e.seen[string(m.Body)]++
	e.mu.Unlock()
	return nil
}

func (e *exactlyOnce) distinct() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.seen)
}

// TestCluster: three combined nodes, each announcing to all three
// lookups. One consumer that discovers producers through a single node's
// lookup gets every message published to every node exactly once; after a
// node is killed, it leaves the surviving lookups within 2 s and messages
// keep flowing through the others.
func TestCluster(t *testing.T) {
	addrs := freeAddrs(t, 12)
	nodes := make([]*clusterNode, 3)
	var lookups []string
	for i := range nodes {
		nodes[i] = &clusterNode{tcp: addrs[4*i], http: addrs[4*i+1], lookupTCP: addrs[4*i+2], lookupHTTP: addrs[4*i+3]}
		lookups = append(lookups, nodes[i].lookupTCP)
	}
	// Start in reverse so early nodes find later lookups unreachable at
	// first: they must retry, not fail.
	for i := len(nodes) - 1; i >= 0; i-- {
		startCombined(t, nodes[i], lookups)
	}

	const topic = "cluster_orders"
	producers := make([]*nsq.Producer, len(nodes))
	for i, n := range nodes {
		producers[i] = producer(t, n.tcp)
		if err := producers[i].Publish(topic, []byte(fmt.Sprintf("hello-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		waitFor(t, 10*time.Second, "three producers in "+n.lookupHTTP+"/lookup", func() bool {
			return lookupProducers(t, n.lookupHTTP, topic) == 3
		})
	}

	h := &exactlyOnce{seen: map[string]int{}}
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 30
	cfg.LookupdPollInterval = time.Second
	c, err := nsq.NewConsumer(topic, "ch", cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetLogger(nil, nsq.LogLevelError)
	c.AddHandler(h)
	if err := c.ConnectToNSQLookupd(nodes[0].lookupHTTP); err != nil {
		t.Fatal(err)
	}
	defer c.Stop()

	const perNode = 100
	want := 3 // the hello messages
	for i, p := range producers {
		for j := 0; j < perNode; j++ {
			if err := p.Publish(topic, []byte(fmt.Sprintf("node%d-%03d", i, j))); err != nil {
				t.Fatal(err)
			}
		}
		want += perNode
	}
	waitFor(t, 15*time.Second, fmt.Sprintf("%d messages from three nodes", want), func() bool { return h.distinct() == want })

	// Kill node 2 outright: its registrations must leave both surviving
	// lookups as soon as its connections close.
	killed := time.Now()
	if err := nodes[2].proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-nodes[2].proc.done
	for _, n := range nodes[:2] {
		waitFor(t, 2*time.Second-time.Since(killed), "the killed node gone from "+n.lookupHTTP, func() bool {
			return lookupProducers(t, n.lookupHTTP, topic) == 2
		})
	}

	for i, p := range producers[:2] {
		for j := 0; j < perNode; j++ {
			if err := p.Publish(topic, []byte(fmt.Sprintf("after-node%d-%03d", i, j))); err != nil {
				t.Fatal(err)
			}
		}
		want += perNode
	}
	waitFor(t, 15*time.Second, "messages after the kill", func() bool { return h.distinct() == want })

	h.mu.Lock()
	defer h.mu.Unlock()
	for body, n := range h.seen {
		if n != 1 {
			t.Errorf("%s delivered %d times, want exactly once", body, n)
		}
	}
}
