package main

import (
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"wren/broker"
	"wren/lookup"
)

// flagEvidence names, for every flag of `wren broker`, `wren lookup` and
// `wren`, the test that shows it doing what it says: "dir.TestName", dir
// being the test's package directory in this repository. A flag wren has
// no use for is refused at start, and its evidence is the test of that
// refusal. TestEveryFlagHasEvidence walks the real flag sets, so a flag
// added without such a test fails it, as does an entry naming a test that
// does not exist or that never mentions the flag.
//
// Keys are "broker <flag>" (also the combined mode's broker flags),
// "lookup <flag>", or "wren <flag>" for the combined mode's own.
var flagEvidence = map[string]string{
	"broker config":                             "cmd/wren.TestParseBrokerArgs",
	"broker version":                            "cmd/wren.TestParseBrokerArgsHelpAndVersion",
	"broker node-id":                            "broker.TestNodeIDInMessageIDs",
	"broker log-level":                          "cmd/wren.TestSetUpLogging",
	"broker log-prefix":                         "cmd/wren.TestSetUpLogging",
	"broker tcp-address":                        "cmd/wren.TestBinaryShutsDownOnSignal",
	"broker http-address":                       "cmd/wren.TestBinaryShutsDownOnSignal",
	"broker https-address":                      "broker.TestHTTPTLSRequired",
	"broker broadcast-address":                  "lookup.TestReferenceNSQDRegisters",
	"broker broadcast-tcp-port":                 "broker.TestLookupBroadcastPorts",
	"broker broadcast-http-port":                "broker.TestLookupBroadcastPorts",
	"broker lookupd-tcp-address":                "broker.TestLookupRegistration",
	"broker auth-http-address":                  "integration.TestAuthWithGoNSQ",
	"broker auth-http-request-method":           "broker.TestAuthRequestMethodOption",
	"broker http-client-connect-timeout":        "broker/auth.TestQueryConnectTimeout",
	"broker http-client-request-timeout":        "broker.TestAuthServerFailures",
	"broker data-path":                          "integration.TestDataPathLocked",
	"broker mem-queue-size":                     "broker.TestOldestFirstAcrossMemoryAndDisk",
	"broker max-bytes-per-file":                 "diskqueue.TestRollsOverSegmentFiles",
	"broker durable":                            "integration.TestDurableKillKeepsAcknowledged",
	"broker sync-every":                         "integration.TestKillKeepsAcceptedMessages",
	"broker sync-timeout":                       "diskqueue.TestSyncTimeoutSyncsWithoutSyncEvery",
	"broker queue-scan-worker-pool-max":         "cmd/wren.TestParseBrokerArgsErrors",
	"broker queue-scan-selection-count":         "cmd/wren.TestParseBrokerArgsErrors",
	"broker msg-timeout":                        "broker.TestTimeoutRedeliversAndTouchExtends",
	"broker max-msg-timeout":                    "broker.TestV2IdentifyLimitsFromFlags",
	"broker max-msg-size":                       "broker.TestV2MPub",
	"broker max-req-timeout":                    "broker.TestV2ReqClampsTimeoutToMax",
	"broker max-body-size":                      "broker.TestV2MPub",
	"broker max-heartbeat-interval":             "broker.TestV2IdentifyLimitsFromFlags",
	"broker max-rdy-count":                      "broker.TestV2Rdy",
	"broker max-output-buffer-size":             "broker.TestV2IdentifyLimitsFromFlags",
	"broker max-output-buffer-timeout":          "broker.TestV2IdentifyLimitsFromFlags",
	"broker min-output-buffer-timeout":          "broker.TestV2IdentifyLimitsFromFlags",
	"broker output-buffer-timeout":              "broker.TestV2IdentifyFeatureNegotiation",
	"broker max-channel-consumers":              "broker.TestV2Sub",
	"broker statsd-address":                     "broker.TestStatsdPushesNsqdMetrics",
	"broker statsd-prefix":                      "broker.TestStatsdExcludeEphemeral",
	"broker statsd-interval":                    "broker.TestStatsdPushesNsqdMetrics",
	"broker statsd-mem-stats":                   "broker.TestStatsdExcludeEphemeral",
	"broker statsd-udp-packet-size":             "broker.TestStatsdPushesNsqdMetrics",
	"broker statsd-exclude-ephemeral":           "broker.TestStatsdExcludeEphemeral",
	"broker e2e-processing-latency-percentile":  "broker.TestE2ELatencyInStats",
	"broker e2e-processing-latency-window-time": "broker.TestE2ELatencyWindowTime",
	"broker topology-region":                    "broker.TestTopologySameZoneFirst",
	"broker topology-zone":                      "broker.TestTopologySameZoneFirst",
	"broker enable-experiment":                  "broker.TestTopologySameZoneFirst",
	"broker tls-cert":                           "broker.TestUpgrades",
	"broker tls-key":                            "broker.TestUpgrades",
	"broker tls-client-auth-policy":             "broker.TestTLSClientCertificatePolicy",
	"broker tls-root-ca-file":                   "broker.TestTLSClientCertificatePolicy",
	"broker tls-required":                       "broker.TestHTTPTLSRequired",
	"broker tls-min-version":                    "broker.TestTLSMinVersion",
	"broker deflate":                            "broker.TestV2IdentifyFeatureNegotiation",
	"broker max-deflate-level":                  "broker.TestV2IdentifyFeatureNegotiation",
	"broker snappy":                             "broker.TestV2IdentifyFeatureNegotiation",

	"lookup config":                    "cmd/wren.TestParseLookupArgs",
	"lookup version":                   "cmd/wren.TestParseBrokerArgsHelpAndVersion",
	"lookup log-level":                 "cmd/wren.TestSetUpLogging",
	"lookup log-prefix":                "cmd/wren.TestSetUpLogging",
	"lookup tcp-address":               "cmd/wren.TestBinaryLookup",
	"lookup http-address":              "cmd/wren.TestBinaryLookup",
	"lookup broadcast-address":         "lookup.TestReferenceNSQDRegisters",
	"lookup inactive-producer-timeout": "lookup.TestInactiveProducer",
	"lookup tombstone-lifetime":        "lookup.TestTombstoneLifetime",

	"wren lookup-tcp-address":               "cmd/wren.TestBinaryCombined",
	"wren lookup-http-address":              "cmd/wren.TestBinaryCombined",
	"wren lookup-inactive-producer-timeout": "cmd/wren.TestParseCombinedArgs",
	"wren lookup-tombstone-lifetime":        "cmd/wren.TestParseCombinedArgs",
}

// flagSets are the command lines wren has, keyed as in flagEvidence.
func flagSets(t *testing.T) map[string]*flag.FlagSet {
	t.Helper()
	brokerFlags, err := newBrokerFlags(broker.NewOptions())
	if err != nil {
		t.Fatal(err)
	}
	lookupFlags, err := newLookupFlags(lookup.NewOptions())
	if err != nil {
		t.Fatal(err)
	}
	combined, err := newCombinedFlags(broker.NewOptions(), lookup.NewOptions())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*flag.FlagSet{"broker": brokerFlags.set, "lookup": lookupFlags.set, "wren": combined.flags.set}
}

// flagWords are the ways a test may name a flag: on a command line, as a
// config key, or as its Options field.
func flagWords(name string) []string {
	words := []string{"--" + name, strings.ReplaceAll(name, "-", "_")}
	for _, typ := range []reflect.Type{reflect.TypeFor[broker.Options](), reflect.TypeFor[lookup.Options]()} {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.Tag.Get("flag") == strings.TrimPrefix(name, combinedLookupPrefix) {
				words = append(words, "."+f.Name)
			}
		}
	}
	return words
}

// repoTests maps "dir.TestName" to the source of every test function in
// the repository, its doc comment included.
func repoTests(t *testing.T) map[string]string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		file, err := parser.ParseFile(fset, path, src, parser.ParseComments)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		for _, decl := range file.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Test") {
				from := fn.Pos()
				if fn.Doc != nil {
					from = fn.Doc.Pos() // a test's comment may name the flag it shows
				}
				start, end := fset.Position(from).Offset, fset.Position(fn.End()).Offset
				tests[filepath.ToSlash(dir)+"."+fn.Name.Name] = string(src[start:end])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tests
}

var combinedBrokerFlag = regexp.MustCompile(`^wren (.*)$`)

func TestEveryFlagHasEvidence(t *testing.T) {
	tests := repoTests(t)
	used := map[string]bool{}
	for mode, set := range flagSets(t) {
		set.VisitAll(func(f *flag.Flag) {
			key := mode + " " + f.Name
			if _, ok := flagEvidence[key]; !ok && mode == "wren" {
				// The combined mode shares the broker's flags.
				key = "broker " + combinedBrokerFlag.FindStringSubmatch(key)[1]
			}
			used[key] = true
			evidence, ok := flagEvidence[key]
			if !ok {
				t.Errorf("%s --%s: no test shows what it does (add one, or refuse the flag at start, and name the test in flagEvidence)", mode, f.Name)
				return
			}
			src, ok := tests[evidence]
			if !ok {
				t.Errorf("%s --%s: evidence %s is not a test in this repository", mode, f.Name, evidence)
				return
			}
			for _, word := range flagWords(f.Name) {
				if strings.Contains(src, word) {
					return
				}
			}
			t.Errorf("%s --%s: %s never mentions it (as any of %q)", mode, f.Name, evidence, flagWords(f.Name))
		})
	}
	var stale []string
	for key := range flagEvidence {
		if !used[key] {
			stale = append(stale, key)
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("flagEvidence lists flags wren no longer has: %q", stale)
	}
}
