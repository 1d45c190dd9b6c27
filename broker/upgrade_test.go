package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"
)

// writeTestCertificates writes a CA and a server certificate for 127.0.0.1
// signed by it into dir, returning the paths of the server cert, its key
// and the CA.
func writeTestCertificates(t testing.TB, dir string) (certFile, keyFile, caFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "wren test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return write("server.pem", "CERTIFICATE", der), write("server.key", "EC PRIVATE KEY", keyDER), write("ca.pem", "CERTIFICATE", caDER)
}

// TestUpgrades publishes and consumes over every connection upgrade go-nsq
// can negotiate, and checks on the broker's side that each was applied.
func TestUpgrades(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, caFile := writeTestCertificates(t, dir)
	b := startTestBroker(t, func(o *Options) {
		o.TLSCert, o.TLSKey, o.TLSRootCAFile = certFile, keyFile, caFile
	})
	cases := []struct {
		name                 string
		tls, snappy, deflate bool
	}{
		{name: "tls", tls: true},
		{name: "snappy", snappy: true},
		{name: "deflate", deflate: true},
		{name: "tls+snappy", tls: true, snappy: true},
		{name: "tls+deflate", tls: true, deflate: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := nsq.NewConfig()
			cfg.Snappy = tc.snappy
			cfg.Deflate = tc.deflate
			cfg.DeflateLevel = 5
			if tc.tls {
				cfg.TlsV1 = true
				cfg.TlsConfig = &tls.Config{InsecureSkipVerify: true}
			}
			topic := "upgrade_" + map[bool]string{true: "t", false: "f"}[tc.tls] +
				map[bool]string{true: "s", false: "n"}[tc.snappy] + map[bool]string{true: "d", false: "n"}[tc.deflate]
			p := newProducer(t, b, cfg)
			const n = 50
			for i := 0; i < n; i++ {
				if err := p.Publish(topic, []byte("compressible compressible compressible")); err != nil {
					t.Fatal(err)
				}
			}
			h := &collector{}
			newConsumer(t, b, topic, "ch", cfg, h)
			waitFor(t, 5*time.Second, "messages over upgraded connection", func() bool { return h.count() == n })
			ch := b.ExistingTopic(topic).ExistingChannel(topic[:0] + "ch")
			clients := ch.clientList()
			if len(clients) != 1 {
				t.Fatalf("%d clients on channel, want 1", len(clients))
			}
			c := clients[0]
			c.writeMu.Lock()
			s, tlsState := c.settings, c.tlsState
			c.writeMu.Unlock()
			if (tlsState != nil) != tc.tls || s.Snappy != tc.snappy || s.Deflate != tc.deflate {
				t.Errorf("broker side: tls=%v snappy=%v deflate=%v, want %v %v %v", tlsState != nil, s.Snappy, s.Deflate, tc.tls, tc.snappy, tc.deflate)
			}
			if tc.deflate && s.DeflateLevel != 5 {
				t.Errorf("deflate level %d, want 5", s.DeflateLevel)
			}
		})
	}
}

// With no --tls-client-auth-policy, as in nsqd, the broker asks for no
// client certificate, so one from another CA does not stop a client;
// require-verify refuses it, and require takes any. Either policy makes
// TLS required.
func TestTLSClientCertificatePolicy(t *testing.T) {
	certFile, keyFile, caFile := writeTestCertificates(t, t.TempDir())
	otherCert, otherKey, _ := writeTestCertificates(t, t.TempDir()) // signed by another CA
	clientCert, err := tls.LoadX509KeyPair(otherCert, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		policy string
		ok     bool
	}{{"", true}, {"require", true}, {"require-verify", false}} {
		t.Run("policy="+tc.policy, func(t *testing.T) {
			b := startTestBroker(t, func(o *Options) {
				o.TLSCert, o.TLSKey, o.TLSRootCAFile = certFile, keyFile, caFile
				o.TLSClientAuthPolicy = tc.policy
			})
			cfg := nsq.NewConfig()
			cfg.TlsV1 = true
			cfg.TlsConfig = &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{clientCert}}
			err := newProducer(t, b, cfg).Publish("policy", []byte("hello"))
			if tc.ok && err != nil {
				t.Fatalf("publish with a certificate from another CA: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("publish with a certificate from another CA succeeded under require-verify")
			}
			if tc.policy != "" {
				// A policy makes TLS required, as in nsqd.
				c := dialRaw(t, b)
				c.sendRaw(t, rawCmd("PUB", []byte("plain"), "policy"))
				c.expectError(t, "E_INVALID cannot PUB in current state (TLS required)")
			}
		})
	}
}

// --tls-min-version refuses a client that cannot reach it: at tls1.3, a
// client capped at TLS 1.2 fails the upgrade and one allowed 1.3 passes.
func TestTLSMinVersion(t *testing.T) {
	certFile, keyFile, _ := writeTestCertificates(t, t.TempDir())
	b := startTestBroker(t, func(o *Options) {
		o.TLSCert, o.TLSKey = certFile, keyFile
		o.TLSMinVersion = tls.VersionTLS13
	})
	for _, tc := range []struct {
		name string
		max  uint16
		ok   bool
	}{{"client at most TLS 1.2", tls.VersionTLS12, false}, {"client allows TLS 1.3", tls.VersionTLS13, true}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := nsq.NewConfig()
			cfg.TlsV1 = true
			cfg.TlsConfig = &tls.Config{InsecureSkipVerify: true, MaxVersion: tc.max}
			err := newProducer(t, b, cfg).Publish("minversion", []byte("hello"))
			if (err == nil) != tc.ok {
				t.Fatalf("publish: %v, want success %v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			// /stats shows the consumer's TLS session as nsqd does.
			newConsumer(t, b, "minversion", "c", cfg, &collector{})
			var stats struct {
				Topics []struct {
					Channels []struct {
						Clients []struct {
							TLS         bool   `json:"tls"`
							Version     string `json:"tls_version"`
							CipherSuite string `json:"tls_cipher_suite"`
						} `json:"clients"`
					} `json:"channels"`
				} `json:"topics"`
			}
			waitFor(t, 5*time.Second, "the TLS consumer in /stats", func() bool {
				r := httpDo(t, b, "GET", "/stats?format=json&topic=minversion", nil)
				if err := json.Unmarshal([]byte(r.body), &stats); err != nil {
					t.Fatalf("/stats: %v in %s", err, r.body)
				}
				return len(stats.Topics) == 1 && len(stats.Topics[0].Channels) == 1 && len(stats.Topics[0].Channels[0].Clients) == 1
			})
			if c := stats.Topics[0].Channels[0].Clients[0]; !c.TLS || c.Version != "TLS1.3" || !strings.HasPrefix(c.CipherSuite, "TLS_") {
				t.Fatalf("client in /stats: %+v, want tls, TLS1.3 and a cipher suite", c)
			}
		})
	}
}
