// Package lookup will hold wren's embedded discovery registry: the "  V1"
// lookup protocol that brokers announce themselves to, and its HTTP API,
// compatible with NSQ's nsqlookupd. Brokers accept --lookupd-tcp-address
// today and will register once this package lands.
package lookup
