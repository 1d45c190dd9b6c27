// Package lookup is wren's embedded discovery registry, compatible with
// NSQ's nsqlookupd v1.3.0: brokers connect over TCP with the "  V1" lookup
// protocol, IDENTIFY themselves and REGISTER the topics and channels they
// hold; consumers and tools ask the HTTP API which brokers have a topic.
//
// Files: options.go (Options), lookup.go (Lookup: Start and Shutdown),
// registry.go (the registrations, with no I/O), tcp.go (one V1
// connection), http.go (the HTTP API), listener.go (the accept loop).
//
// Lock order: Lookup.mu and registry.mu are never held together, and no
// lock is held while writing to a connection. registry.mu guards every
// registration and producer, tombstones included; a peer's last-seen time
// is atomic so that PING needs no lock. peerConn's close is a sync.Once.
package lookup
