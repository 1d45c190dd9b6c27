module wren

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/bmizerany/perks v0.0.0-20230307044200-03f9df79da1e
	github.com/golang/snappy v1.0.0
	github.com/klauspost/compress v1.20.3
	github.com/nsqio/go-diskqueue v1.1.0
	github.com/nsqio/go-nsq v1.1.0
)

require (
	github.com/hanwen/go-fuse/v2 v2.12.1
	github.com/julienschmidt/httprouter v1.3.0
	github.com/segmentio/nsq-go v1.2.10
)

require (
	github.com/pkg/errors v0.9.1 // indirect
	golang.org/x/sys v0.28.0 // indirect
)
