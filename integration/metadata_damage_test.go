package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDamagedMetadataRecovered publishes 1,000 messages, stops wren,
// damages a channel queue's .meta.dat or nsqd.dat the ways a bad disk, a
// crash or a hand edit do, and starts wren again on the data path. Every
// acknowledged message must be received (duplicates are allowed, losses
// are not), the repair must be logged, and the broker must keep serving.
func TestDamagedMetadataRecovered(t *testing.T) {
	const topic, channel, batches, perBatch = "meta-damage", "ch", 100, 10
	channelMeta := topic + ":" + channel + ".diskqueue.meta.dat"
	write := func(file, content string) func(t *testing.T, data string) {
		return func(t *testing.T, data string) {
			if err := os.WriteFile(filepath.Join(data, file), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name    string
		damage  func(t *testing.T, data string)
		wantLog string
	}{
		{"queue metadata missing", func(t *testing.T, data string) {
			if err := os.Remove(filepath.Join(data, channelMeta)); err != nil {
				t.Fatal(err)
			}
		}, "problem=\"metadata file missing\""},
		{"queue metadata garbage", write(channelMeta, "\x00garbage\xff"), "metadata unparsable"},
		{"queue metadata reads past its write file", write(channelMeta, "1000\n900,0\n3,0\n"), "read file after the write file"},
		{"queue metadata positions past the file ends", write(channelMeta, "1000\n0,99999999\n9999,99999999\n"), "rebuilt disk queue metadata"},
		{"nsqd.dat garbage", write("nsqd.dat", "{\"topics\":[{\"na\x00\x00"), "nsqd.dat is damaged"},
		{"nsqd.dat empty", write("nsqd.dat", ""), "nsqd.dat is damaged"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--mem-queue-size=0", "--max-bytes-per-file=4096"}
			data := t.TempDir()
			w := startWren(t, data, args...)
			post(t, w.http, "/topic/create", url.Values{"topic": {topic}})
			post(t, w.http, "/channel/create", url.Values{"topic": {topic}, "channel": {channel}})
			p := producer(t, w.tcpAddr)
			acknowledged := map[string]bool{}
			for b := 0; b < batches; b++ {
				var bodies [][]byte
				for i := 0; i < perBatch; i++ {
					bodies = append(bodies, []byte(fmt.Sprintf("msg-%04d", b*perBatch+i)))
				}
				if err := p.MultiPublish(topic, bodies); err != nil {
					t.Fatal(err)
				}
				for _, body := range bodies {
					acknowledged[string(body)] = true
				}
			}
			p.Stop()
			w.stop()
			tc.damage(t, data)

			w2 := startWren(t, data, args...)
			got := newReceived(false)
			c := consumer(t, w2.tcpAddr, topic, channel, 200, got)
			defer c.Stop()
			waitFor(t, 30*time.Second, "every acknowledged message", func() bool {
				return got.distinct() >= len(acknowledged)
			})
			if !strings.Contains(w2.logs(), tc.wantLog) {
				t.Errorf("the repair was not logged (want %q)", tc.wantLog)
			}

			// Still serving: a message published now is delivered.
			p2 := producer(t, w2.tcpAddr)
			if err := p2.Publish(topic, []byte("after the damage")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "a message published after the repair", func() bool {
				got.mu.Lock()
				defer got.mu.Unlock()
				return got.at["after the damage"] != time.Time{}
			})

			got.mu.Lock()
			defer got.mu.Unlock()
			lost, unknown := 0, 0
			for body := range acknowledged {
				if _, ok := got.at[body]; !ok {
					lost++
				}
			}
			for body := range got.at {
				if !acknowledged[body] && body != "after the damage" {
					unknown++
				}
			}
			// The message published after the repair is left out.
			received, distinct := got.count-1, len(got.at)-1
			t.Logf("acknowledged %d, received %d (%d distinct), lost %d, duplicated %d",
				len(acknowledged), received, distinct, lost, received-distinct)
			if lost != 0 || unknown != 0 {
				t.Errorf("lost %d acknowledged messages, received %d never published", lost, unknown)
			}
			if w2.cmd.ProcessState != nil {
				t.Error("wren exited")
			}
			if losses := channelLosses(t, w2.http, topic, channel); losses["damaged_records"]+losses["damaged_files"]+losses["lost_messages"] != 0 {
				t.Errorf("/stats reports losses %v after a repair that lost nothing", losses)
			}
		})
	}
}

// channelLosses reads a channel's wren_* loss counters from /stats.
func channelLosses(t *testing.T, httpAddr, topic, channel string) map[string]int64 {
	t.Helper()
	var s struct {
		Topics []struct {
			TopicName string `json:"topic_name"`
			Channels  []struct {
				ChannelName    string `json:"channel_name"`
				DamagedRecords int64  `json:"wren_damaged_records"`
				DamagedFiles   int64  `json:"wren_damaged_files"`
				LostMessages   int64  `json:"wren_lost_messages"`
			} `json:"channels"`
		} `json:"topics"`
	}
	code, err := getJSON("http://"+httpAddr+"/stats?format=json&topic="+url.QueryEscape(topic), &s)
	if err != nil || code != http.StatusOK {
		t.Fatalf("/stats: %d %v", code, err)
	}
	for _, tp := range s.Topics {
		for _, c := range tp.Channels {
			if tp.TopicName == topic && c.ChannelName == channel {
				return map[string]int64{"damaged_records": c.DamagedRecords,
					"damaged_files": c.DamagedFiles, "lost_messages": c.LostMessages}
			}
		}
	}
	t.Fatalf("/stats has no channel %s/%s", topic, channel)
	return nil
}
